"""Many misbehaving image hosts on loopback addresses, in their own process, counting connections.

    with HostFarm(hosts=200, seed=0) as farm:
        urls = farm.urls(100_000)          # round-robin over the hosts, each URL's behaviour fixed
        ... download ...
        farm.stats()                       # per host: requests, max open connections, max in flight

Each host is its own address (`127.0.<k // 250 + 1>.<k % 250 + 1>`, all of 127.0.0.0/8 is loopback on
Linux) with its own listening port, so a downloader sees `hosts` distinct host names. A host has
one kind, assigned round-robin from `kinds` (default `KINDS`):

- `fast`: a small JPEG at once. `slow`: the same after `slow_s`.
- `dead`: nothing listens (connection refused). `hang`: accepts, reads the request, never answers.
- `redirect`: 302 to the same image on the same host (`/r/...` -> `/img/...`).
- `rate_limited`: 429 with `Retry-After: 1` on the first request of every 10th path, then the image.
- `huge`: odd paths declare `Content-Length` of 1 GiB, even paths stream chunks with no length until
  the client hangs up (at most `huge_stream_bytes`).

The server is a lean asyncio loop in a spawned process (so its CPU is not the client's GIL), and
counts per host the connections open and the requests in flight at once (the measure of a
downloader's per-host limit). robots.txt and tdmrep.json answer 404 (no rules).
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing as mp
import random
import resource
import socket
from dataclasses import dataclass

from PIL import Image

KINDS = ("fast", "fast", "fast", "slow", "dead", "hang", "redirect", "rate_limited", "huge", "fast")


def host_address(k: int) -> str:
    return f"127.0.{k // 250 + 1}.{k % 250 + 1}"


def small_jpegs(n: int = 8, side: int = 96, seed: int = 0) -> list[bytes]:
    """Distinct small JPEGs (noise, so each is a few kB: decode cost stays small under load)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        img = Image.effect_noise((side, side), 30 + i).convert("RGB")
        img = Image.blend(img, Image.new("RGB", img.size, tuple(rng.randrange(256) for _ in range(3))), 0.5)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


@dataclass
class _Host:
    kind: str
    open: int = 0
    max_open: int = 0
    inflight: int = 0
    max_inflight: int = 0
    requests: int = 0
    connections: int = 0


def _response(body: bytes, ctype: bytes = b"image/jpeg", status: bytes = b"200 OK",
              extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def _serve(n_hosts: int, slow_s: float, huge_stream_bytes: int, kinds: tuple[str, ...], ready,
           control, images: list[bytes] | None = None) -> None:
    images = list(images) if images else small_jpegs()
    not_found = _response(b"not found", b"text/plain", b"404 Not Found")
    state = [_Host(kinds[k % len(kinds)]) for k in range(n_hosts)]
    seen_429: set[tuple[int, bytes]] = set()

    live: list[set] = [set() for _ in range(n_hosts)]

    class Conn(asyncio.Protocol):
        def __init__(self, k: int):
            self.k, self.h, self.buf, self._pending, self._gone = k, state[k], b"", 0, False

        def connection_made(self, transport):
            self.t = transport
            self._settle_peers()
            h = self.h
            h.open += 1
            h.connections += 1
            h.max_open = max(h.max_open, h.open)
            live[self.k].add(self)

        def connection_lost(self, exc):
            self._forget()

        def _forget(self) -> None:
            if not self._gone:
                self._gone = True
                live[self.k].discard(self)
                self.h.open -= 1
                self.h.inflight -= self._pending
                self._pending = 0

        def _peer_closed(self) -> bool:
            """Whether the client already closed this connection, though the loop has not yet read the
            EOF. A client that aborts a request (read timeout, size cap) closes its socket before it
            starts the next one, but the loop may see the new request first: without this, the count
            would charge the client with one request it no longer has."""
            sock = self.t.get_extra_info("socket")
            raw = getattr(sock, "_sock", sock)
            try:
                return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        def _settle_peers(self) -> None:
            for c in list(live[self.k]):
                if c is not self and c._peer_closed():
                    c._forget()

        def data_received(self, data):
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].split(b"?", 1)[0]
                self.request(path)

        def request(self, path: bytes) -> None:
            h = self.h
            self._settle_peers()
            h.requests += 1
            h.inflight += 1
            h.max_inflight = max(h.max_inflight, h.inflight)
            self._pending += 1
            if path in (b"/robots.txt", b"/.well-known/tdmrep.json"):
                return self.send(not_found)
            n = int(path.rsplit(b"/", 1)[-1].split(b".", 1)[0] or 0) if path[-4:] == b".jpg" else 0
            body = images[n % len(images)]
            kind = h.kind
            if kind == "hang":
                return  # read, never answered: the client's read timeout must end it
            if kind == "slow":
                loop.call_later(slow_s, self.send, _response(body))
            elif kind == "redirect" and path.startswith(b"/r/"):
                self.send(_response(b"", b"text/plain", b"302 Found", b"Location: /img/" + path[3:] + b"\r\n"))
            elif kind == "rate_limited" and n % 10 == 0 and (self.k, path) not in seen_429:
                seen_429.add((self.k, path))
                self.send(_response(b"slow down", b"text/plain", b"429 Too Many Requests", b"Retry-After: 1\r\n"))
            elif kind == "huge" and n % 2:  # declares 1 GiB, sends a little, hangs up
                self.send(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1073741824"
                          b"\r\n\r\n" + body, done=False)
            elif kind == "huge":
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n")
                loop.create_task(self.stream(body))
            else:
                self.send(_response(body))

        async def stream(self, body: bytes) -> None:
            chunk = (body * (65536 // len(body) + 1))[:65536]
            sent = 0
            while not self.t.is_closing() and sent < huge_stream_bytes:
                self.t.write(chunk)
                sent += len(chunk)
                await asyncio.sleep(0.002)
            self.t.close()

        def send(self, data: bytes, done: bool = True) -> None:
            if self.t.is_closing():
                return
            self.t.write(data)
            if done and self._pending:
                self._pending -= 1
                self.h.inflight -= 1
            if not done:
                self.t.close()

    async def main():
        ports = []
        servers = []
        for k in range(n_hosts):
            addr = host_address(k)
            if state[k].kind == "dead":  # a port that was free a moment ago: connection refused
                with socket.socket() as s:
                    s.bind((addr, 0))
                    ports.append(s.getsockname()[1])
                continue
            srv = await loop.create_server(lambda k=k: Conn(k), addr, 0, backlog=256)
            servers.append(srv)
            ports.append(srv.sockets[0].getsockname()[1])
        ready.send([(host_address(k), ports[k], state[k].kind) for k in range(n_hosts)])
        await loop.run_in_executor(None, control.recv)  # "stats" request: answer and stop
        for srv in servers:
            srv.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        control.send({"hosts": [vars(h) for h in state], "server_peak_rss_mb": rss})

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())


class HostFarm:
    """Context manager running `hosts` loopback hosts in a spawned process (see module doc)."""

    def __init__(self, hosts: int = 200, slow_s: float = 0.3, huge_stream_bytes: int = 32 << 20,
                 kinds: tuple[str, ...] = KINDS, images: list[bytes] | None = None):
        if hosts > 250 * 250:
            raise ValueError(f"hosts={hosts}: at most {250 * 250}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"kinds={sorted(unknown)}: allowed {sorted(set(KINDS))}")
        self.n_hosts, self.slow_s, self.huge_stream_bytes = hosts, slow_s, huge_stream_bytes
        self.kinds = tuple(kinds)
        self.images = images  # served bodies (path /img/<n>.jpg -> images[n % len]); None: small_jpegs()
        self.hosts: list[tuple[str, int, str]] = []
        self._stats: dict | None = None

    def __enter__(self) -> HostFarm:
        ctx = mp.get_context("spawn")
        ready_r, ready_w = ctx.Pipe(duplex=False)
        self._control, child_control = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, daemon=True, name="hostfarm", args=(
            self.n_hosts, self.slow_s, self.huge_stream_bytes, self.kinds, ready_w, child_control,
            self.images))
        self._proc.start()
        waited = 0.0
        while not ready_r.poll(0.2):
            waited += 0.2
            if not self._proc.is_alive() or waited > 60:
                self._proc.kill()
                raise RuntimeError(f"host farm did not start (exit code {self._proc.exitcode})")
        self.hosts = ready_r.recv()
        return self

    def url(self, i: int) -> str:
        """URL number i: host i % hosts, its path by the host's kind."""
        addr, port, kind = self.hosts[i % len(self.hosts)]
        prefix = "r" if kind == "redirect" else "img"
        return f"http://{addr}:{port}/{prefix}/{i}.jpg"

    def urls(self, n: int) -> list[str]:
        return [self.url(i) for i in range(n)]

    def kind_of(self, url: str) -> str:
        host = url.split("/", 3)[2].split(":", 1)[0]
        return next(kind for addr, _, kind in self.hosts if addr == host)

    def allow_list(self) -> tuple[str, ...]:
        """What to put in `DownloadConfig.allow_private_hosts` to reach the farm."""
        return ("127.0.0.0/16",) if len(self.hosts) <= 250 * 250 else ("127.0.0.0/8",)

    def stats(self) -> dict:
        """Per-host counters (stops the farm: call once, at the end)."""
        if self._stats is None:
            self._control.send("stats")
            self._stats = self._control.recv()
        return self._stats

    def __exit__(self, *exc) -> None:
        if self._stats is None and self._proc.is_alive():
            try:
                self.stats()
            except (EOFError, OSError):
                pass
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
