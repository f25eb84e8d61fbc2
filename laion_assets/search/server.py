"""The search service over HTTP (stdlib `http.server`, one thread per request), bound to 127.0.0.1.

    GET  /api/search?q=<text>&k=<n>[&release=<variant>][&index=image|text][&lang=en,de]
         [&nsfw=UNLIKELY,UNSURE][&min_similarity=0.2]
         -> [{SAMPLE_ID, URL, TEXT, similarity, score, release, version, warc_path, warc_offset, ...}]
    POST /api/search  (an image: multipart field `image`, or the raw bytes), same parameters
         -> {"nearest": [...], "pdq_matches": [... + pdq_distance], "query_pdq", "query_pdq_quality"}
    POST /api/removal {"release", "SAMPLE_ID", "reason", "contact"} -> {"request_id", "file", ...}
    GET  /api/releases -> [{release, version, rows, hidden_rows, languages, model_id}]
    GET  /thumb/<release>/<SAMPLE_ID>[?unblur=1] -> JPEG from the stored tar (410 for removed rows)
    GET  / -> the page

The page loads nothing but this origin (Content-Security-Policy 'self'); thumbnails are never
fetched from a row's URL.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from laion_assets.core.search.encode import MAX_QUERY_IMAGE_BYTES, BadQueryImage
from laion_assets.core.search.requests import BadRemovalRequest
from laion_assets.core.search.service import Filters, SearchService, UnknownRelease
from laion_assets.search.page import PAGE

MAX_JSON_BYTES = 64 * 1024
CSP = ("default-src 'none'; img-src 'self' blob:; connect-src 'self'; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
log = logging.getLogger("laion_assets.search")


class BadRequest(ValueError):
    pass


def _one(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[-1] if values else default


def _set(params: dict[str, list[str]], name: str) -> frozenset[str] | None:
    raw = _one(params, name)
    if raw is None or raw == "":
        return None
    return frozenset(x.strip() for x in raw.split(",") if x.strip())


def query_args(params: dict[str, list[str]]) -> tuple[int, str | None, Filters, str]:
    try:
        k = int(_one(params, "k", "20"))
        min_sim = _one(params, "min_similarity")
        min_sim = float(min_sim) if min_sim not in (None, "") else None
    except ValueError as e:
        raise BadRequest(f"k must be an integer and min_similarity a number: {e}") from e
    if not 1 <= k <= 500:
        raise BadRequest("k must be between 1 and 500")
    which = _one(params, "index", "image")
    if which not in ("image", "text"):
        raise BadRequest("index must be image or text")
    return k, _one(params, "release") or None, Filters(_set(params, "lang"), _set(params, "nsfw"), min_sim), which


def upload_bytes(content_type: str, body: bytes) -> bytes:
    """The image of a POST: multipart field `image` (the page's form), else the raw body."""
    if content_type.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "image":
                return part.get_payload(decode=True) or b""
        raise BadRequest("multipart upload without an `image` field")
    return body


def make_handler(service: SearchService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "laion-search"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args) -> None:  # the access log goes to logging, not stderr
            log.info("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _body(self, limit: int) -> bytes:
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError as e:
                raise BadRequest("bad Content-Length") from e
            if n > limit:
                raise BadRequest(f"body of {n} bytes is over {limit}")
            return self.rfile.read(n) if n else b""

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query, keep_blank_values=True)
            try:
                if method == "GET" and url.path in ("/", "/index.html"):
                    return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                if method == "GET" and url.path == "/favicon.ico":
                    return self._send(204, b"", "image/x-icon")
                if method == "GET" and url.path == "/api/releases":
                    return self._json(200, releases(service))
                if url.path == "/api/search" and method == "GET":
                    q = (_one(params, "q") or "").strip()
                    if not q:
                        raise BadRequest("q (the text to search for) is required")
                    k, release, filters, which = query_args(params)
                    return self._json(200, service.search_text(q, k, release, filters, index=which))
                if url.path == "/api/search" and method == "POST":
                    k, release, filters, _ = query_args(params)
                    data = upload_bytes(self.headers.get("Content-Type", ""), self._body(MAX_QUERY_IMAGE_BYTES + 65536))
                    return self._json(200, service.search_image(data, k, release, filters))
                if url.path == "/api/removal" and method == "POST":
                    try:
                        req = json.loads(self._body(MAX_JSON_BYTES) or b"{}")
                        sample_id = int(req["SAMPLE_ID"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise BadRequest("JSON body with SAMPLE_ID, reason, contact (and release) expected") from e
                    out = service.file_request(req.get("release"), sample_id,
                                               reason=str(req.get("reason", "")), contact=str(req.get("contact", "")))
                    return self._json(201, out)
                if method == "GET" and url.path.startswith("/thumb/"):
                    parts = url.path.split("/")
                    if len(parts) != 4 or not parts[3].isdigit():
                        raise BadRequest("/thumb/<release>/<SAMPLE_ID>")
                    jpeg = service.thumbnail(parts[2], int(parts[3]), unblur=_one(params, "unblur") == "1")
                    if jpeg is None:
                        return self._json(410, {"error": "this row is on the removal list"})
                    return self._send(200, jpeg, "image/jpeg")
                return self._json(404, {"error": f"no route {method} {url.path}"})
            except (BadRequest, BadQueryImage, BadRemovalRequest) as e:
                return self._json(400, {"error": str(e)})
            except UnknownRelease as e:
                return self._json(404, {"error": f"unknown release {e.args[0]!r}", "releases": list(service.releases)})
            except KeyError as e:
                return self._json(404, {"error": f"no such row: {e.args[0]}"})

        def do_GET(self) -> None:  # noqa: N802
            self._route("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

    return Handler


def releases(service: SearchService) -> list[dict]:
    out = []
    for rel in service.releases.values():
        langs = sorted({x for x in rel.language if x})
        out.append({"release": rel.variant, "version": rel.version, "rows": len(rel.sample_ids),
                    "hidden_rows": int(rel.hidden.sum()), "languages": langs,
                    "model_id": sorted({m for m in rel.meta.column("model_id").to_pylist() if m}),
                    "blur_punsafe_over": service.blur_punsafe_over})
    return out


def serve(service: SearchService, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); `.shutdown()` stops it. Port 0 picks a free one."""
    httpd = ThreadingHTTPServer((host, port), make_handler(service))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="laion-search", daemon=True).start()
    return httpd
