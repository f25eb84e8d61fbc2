"""The sample crawl's image server: one per port, shared by every process that needs it, verified.

Why this shape: the sample's WARC pages name their images as http://127.0.0.1:<port>/..., so every
download step of the sample, in any process, needs that one port served with that sample's files.
A server living inside one step dies with that step and silently fails the downloads of every
other step that reused it (two parallel shards: one saw 0 of 27 images). So:

- The server is its own small process (this file, standard library only), not part of any step.
- A process that needs it takes a *lease*: a shared `flock` on a lease file next to the sample.
  The server exits only after no lease has been held for `idle_exit_s` (it checks by trying an
  exclusive lock, and closes its socket while still holding it, so a new user either sees it
  serving or sees the port closed and starts a fresh one; never a server about to vanish).
- Every user verifies the server by content: a random token written with the sample is fetched
  and compared. A foreign server on the port (another storage root, another program) is refused
  with a clear error, never silently used.

Run as a script (`python sample_server.py --sample-dir D --port P --lease L`) it binds the port,
forks into the background, and exits 0 (bound) or 3 (port in use) so the caller learns the outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import http.server
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TOKEN_NAME = "sample-server-token.txt"
EXIT_PORT_IN_USE = 3


class SampleServerError(RuntimeError):
    """The sample's images cannot be served on the port its pages name (says why and what to do)."""


POINTER_NAME = "_CURRENT"  # core/storage/local.py's pointer of a committed directory (read here, stdlib only)


def live_images_dir(sample_dir: Path) -> Path:
    """`<sample>/<live version>/images` of a committed sample directory (`images` of a plain one).

    Resolved on every request by the server, so a rebuilt sample is served from its new version
    and never from one storage has since removed.
    """
    import json

    sample_dir = Path(sample_dir)
    try:
        version = json.loads((sample_dir / POINTER_NAME).read_bytes())["version"]
    except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError):
        return sample_dir / "images"
    return sample_dir / version / "images"


def write_token(images_dir: Path) -> str:
    """Write a fresh random token into the served directory: what a user compares to identify it."""
    token = secrets.token_hex(16)
    (images_dir / TOKEN_NAME).write_text(token)
    return token


def ensure_token(images_dir: Path) -> str:
    """The directory's token, created if absent (atomically: concurrent callers agree on one)."""
    existing = read_token(images_dir)
    if existing:
        return existing
    tmp = images_dir / f".{TOKEN_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.write_text(secrets.token_hex(16))
    try:
        os.link(tmp, images_dir / TOKEN_NAME)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return read_token(images_dir) or ""


def read_token(images_dir: Path) -> str | None:
    try:
        return (images_dir / TOKEN_NAME).read_text().strip()
    except FileNotFoundError:
        return None


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def served_token(port: int, timeout_s: float = 2.0) -> str | None:
    """The token the server on 127.0.0.1:`port` serves; None if nothing answers it."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/{TOKEN_NAME}", timeout=timeout_s) as r:
            return r.read(256).decode("ascii", "replace").strip()
    except (OSError, urllib.error.URLError, ValueError):
        return None


def recorded_port(sample_dir: Path) -> int | None:
    """The port a built sample's pages name (`image_base_url` in its spec.json); None if unbuilt."""
    import json
    from urllib.parse import urlsplit

    try:
        spec = json.loads((live_images_dir(sample_dir).parent / "spec.json").read_text())
        return urlsplit(spec["image_base_url"]).port
    except (FileNotFoundError, KeyError, ValueError):
        return None


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class SampleServerLease:
    port: int
    token: str
    started_server: bool  # this lease started the server process (else it verified a running one)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_server(sample_dir: Path, port: int, lease_path: Path, idle_exit_s: float) -> int:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--sample-dir", str(sample_dir), "--port", str(port),
        "--lease", str(lease_path), "--idle-exit-s", str(idle_exit_s),
    ]
    # The script forks the server into its own session and exits at once: nothing to reap later.
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=30, check=False)
    return done.returncode


@contextlib.contextmanager
def lease_sample_server(
    sample_dir: Path,
    port: int,
    lease_path: Path,
    *,
    idle_exit_s: float = 5.0,
    start_timeout_s: float = 15.0,
) -> Iterator[SampleServerLease]:
    """Hold the server of the sample in `sample_dir` (its live `images/`) on `port` up for the
    block, starting it if none runs.

    Raises SampleServerError when the port serves something else or cannot be served.
    """
    sample_dir, lease_path = Path(sample_dir), Path(lease_path)
    images_dir = live_images_dir(sample_dir)
    if not images_dir.is_dir():
        raise SampleServerError(f"{images_dir} does not exist: materialize sample_crawl first")
    expected = ensure_token(images_dir)  # a sample built before tokens existed gets one now
    lease_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lease_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # from here on the server cannot exit
        started = False
        start_code: int | None = None
        deadline = time.monotonic() + start_timeout_s
        while True:
            got = served_token(port)
            if got == expected:
                break
            if got is not None:
                raise SampleServerError(
                    f"port {port} serves another sample crawl (token {got[:8]}..., this root's is "
                    f"{expected[:8]}...): two storage roots share LAION_SAMPLE_IMAGE_PORT={port}; give "
                    "each root its own port (0 = a free one) and re-materialize sample_crawl"
                )
            if not started:
                start_code = _start_server(sample_dir, port, lease_path, idle_exit_s)
                started = start_code == 0
            if time.monotonic() > deadline:
                what = ("is in use by another program" if start_code == EXIT_PORT_IN_USE or port_in_use(port)
                        else "could not be served")
                raise SampleServerError(
                    f"port {port} {what} and does not serve the sample crawl's images; set "
                    "LAION_SAMPLE_IMAGE_PORT to a free port (0 = any free port) and re-materialize "
                    "sample_crawl"
                )
            time.sleep(0.05)
        yield SampleServerLease(port=port, token=expected, started_server=started)
    finally:
        os.close(fd)  # releases the shared lock


class _LiveSampleHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the sample's live images directory, resolved per request; logs nothing."""

    sample_dir: Path

    def translate_path(self, path: str) -> str:
        self.directory = str(live_images_dir(self.sample_dir))
        return super().translate_path(path)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _idle_for_long(lease_path: Path, idle_exit_s: float, server: http.server.HTTPServer) -> None:
    """Poll the lease; once no one has held it for idle_exit_s, close the socket under the lock."""
    idle_since: float | None = None
    while True:
        time.sleep(0.2)
        try:
            fd = os.open(lease_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # the storage root is gone: nobody can need us any more
            break
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since >= idle_exit_s:
                server.shutdown()
                server.server_close()  # closed while holding the lock: see the module doc
                return
        finally:
            os.close(fd)
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="serve a sample crawl's images while leased")
    ap.add_argument("--sample-dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lease", required=True)
    ap.add_argument("--idle-exit-s", type=float, default=5.0)
    args = ap.parse_args(argv)
    handler = type("Handler", (_LiveSampleHandler,), {"sample_dir": Path(args.sample_dir)})
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return EXIT_PORT_IN_USE
        print(f"sample server: {exc}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    if os.fork() > 0:
        os._exit(0)  # the caller waits for this exit; the child below serves
    os.setsid()
    os.chdir("/")  # the caller's working directory may be removed while we serve
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    watcher = threading.Thread(
        target=_idle_for_long, args=(Path(args.lease), args.idle_exit_s, server), daemon=True
    )
    watcher.start()
    server.serve_forever(poll_interval=0.2)
    watcher.join(timeout=5)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
