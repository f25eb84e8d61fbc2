"""A real HTTP/1.1 server on 127.0.0.1 for tests and the download bench (keep-alive, threads).

Routes map a path to a function `(handler) -> None` that writes the whole response itself, so
tests can misbehave on purpose (drip, lie about Content-Length, never end). Every request is
logged as (method, path, headers) for assertions such as "robots.txt fetched once".
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

Route = Callable[[BaseHTTPRequestHandler], None]


def send(handler: BaseHTTPRequestHandler, body: bytes, content_type: str | None = "image/jpeg",
         status: int = 200, headers: Mapping[str, str] | None = None) -> None:
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def static(body: bytes, content_type: str | None = "image/jpeg", status: int = 200,
           headers: Mapping[str, str] | None = None) -> Route:
    return lambda h: send(h, body, content_type, status, headers)


class TestServer:
    """`with TestServer(routes, latency_s=0.02) as srv: srv.url("/a.jpg")`; unknown paths -> 404."""

    __test__ = False  # not a pytest class

    def __init__(self, routes: dict[str, Route], latency_s: float = 0.0):
        self.routes = dict(routes)
        self.latency_s = latency_s
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with outer._lock:
                    outer.log.append((self.command, self.path, dict(self.headers)))
                if outer.latency_s:
                    time.sleep(outer.latency_s)
                route = outer.routes.get(self.path.split("?", 1)[0])
                try:
                    if route is None:
                        send(self, b"not found", "text/plain", 404)
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_HEAD = do_GET

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:  # clients hang up on purpose
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> int:
        with self._lock:
            return sum(1 for _, p, _ in self.log if p.split("?", 1)[0] == path)

    def __enter__(self) -> TestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A photo-like JPEG (smooth gradients plus noise), so sizes and decode costs are realistic."""
    rng = random.Random(seed)
    small = Image.new("RGB", (max(2, width // 32), max(2, height // 32)))
    small.putdata([
        (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        for _ in range(small.width * small.height)
    ])
    img = small.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    img = Image.blend(img, noise, 0.25)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
