"""Which port a storage root's sample crawl names: reserved per host, so two roots never share one.

Why: the sample's WARC pages carry their image URLs (`http://127.0.0.1:<port>/img/...`), so the port
is fixed when the sample is built and every later download step of that root needs exactly it. Two
roots built on the one default port worked alone and collided side by side (the second root's
steps found the first root's server and were refused), and a port checked only for "free right
now" is no reservation: a root whose server has idled out still owns its port.

So a build takes its port through a host-wide registry (one small file per reserved port, written
under an exclusive `flock`, naming the owning root and the sample directory whose spec.json records
the port). A reservation counts only while that directory still records that port: a deleted root,
or one rebuilt on another port, frees it without any clean-up step.

Port choice (`choose_build_port`):
- `None` (the setting unset, "auto"): the root's own recorded port while it is still its own
  (reserved by it or by no one, and not served by someone else); else `PREFERRED_PORT` if it is
  free and unreserved; else a fresh free port.
- `0`: always a fresh free port, never the recorded one (a build that failed on its port must not
  be rebuilt on it again).
- `N`: exactly N; refused at build time when another live root has reserved it.
Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFERRED_PORT = 18765  # what a single root gets when it is free: the sample's bytes stay the same everywhere
_LOCK_NAME = ".lock"
_MAX_TRIES = 200


class PortReservedError(RuntimeError):
    """The requested port belongs to another root's sample (the message names the root and the fix)."""


def default_registry_dir() -> Path:
    """Per host and user: ports are host-wide; another user's running server is still seen by the
    in-use check, not by this registry."""
    return Path(tempfile.gettempdir()) / f"laion-assets-sample-ports-{os.getuid()}"


@dataclass(frozen=True)
class Reservation:
    port: int
    owner: str  # the storage URI of the root's sample directory: who the port belongs to
    sample_dir: str  # the local directory whose spec.json records the port (what keeps it alive)


def _recorded_port(sample_dir: str) -> int | None:
    from laion_assets.core.sample.server import recorded_port

    return recorded_port(Path(sample_dir))


def _bindable(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port and the server could bind it now (it sets SO_REUSEADDR, so
    connections of an exited server in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _fresh_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortRegistry:
    """The host's port reservations for sample crawls (a directory of `<port>.json` files)."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory else default_registry_dir()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive for choose-then-reserve: two roots building at once cannot pick one port."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def live(self, port: int) -> Reservation | None:
        """The reservation of `port` if its sample still records that port (else None, and pruned)."""
        path = self.dir / f"{port}.json"
        try:
            raw = json.loads(path.read_text())
            res = Reservation(port, str(raw["owner"]), str(raw["sample_dir"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            path.unlink(missing_ok=True)  # a torn or foreign file reserves nothing
            return None
        if _recorded_port(res.sample_dir) != port:
            path.unlink(missing_ok=True)
            return None
        return res

    def reserve(self, port: int, owner: str, sample_dir: str | Path) -> None:
        """Record `owner` as the port's holder (call after its sample recording `port` is committed)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.dir / f".{port}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"owner": owner, "sample_dir": str(sample_dir)}))
        os.replace(tmp, self.dir / f"{port}.json")

    def holder_other_than(self, port: int, owner: str) -> Reservation | None:
        res = self.live(port)
        return res if res is not None and res.owner != owner else None


def choose_build_port(
    requested: int | None,
    owner: str,
    recorded: int | None,
    registry: PortRegistry,
    *,
    serves_own_sample: bool = False,
    preferred: int = PREFERRED_PORT,
) -> int:
    """The port a (re)build of `owner`'s sample names; call inside `registry.locked()`.

    `recorded` is the port its current sample records (None before the first build);
    `serves_own_sample` says the server on `recorded` answers with this root's token.
    """
    if requested:
        other = registry.holder_other_than(requested, owner)
        if other is not None:
            raise PortReservedError(
                f"LAION_SAMPLE_IMAGE_PORT={requested}: reserved by the sample crawl of {other.owner} "
                f"(its spec.json names it); unset it (a port is chosen per root) or set 0 or another port"
            )
        return requested
    if requested is None and recorded:
        if registry.holder_other_than(recorded, owner) is None and (serves_own_sample or _bindable(recorded)):
            return recorded
    if requested is None and preferred != recorded and registry.live(preferred) is None and _bindable(preferred):
        return preferred
    for _ in range(_MAX_TRIES):
        port = _fresh_port()
        if port != recorded and registry.live(port) is None:
            return port
    raise PortReservedError(f"no free, unreserved port found in {_MAX_TRIES} tries (registry {registry.dir})")
