"""Build small WARC / WAT files byte by byte, so each real-world quirk can be produced on purpose."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib

DATE = "2024-05-20T12:00:00Z"


def http_response(body: bytes, content_type: str = "text/html", headers: dict[str, str] | None = None,
                  status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def record(rtype: str, uri: str | None, block: bytes, *, version: str = "1.0", length: int | None = None,
           extra: dict[str, str] | None = None, content_type: str | None = None, date: str | None = DATE,
           record_id: str | None = None) -> bytes:
    lines = [f"WARC/{version}", f"WARC-Type: {rtype}", f"WARC-Record-ID: {record_id or f'<urn:uuid:{uuid.uuid4()}>'}"]
    if date:
        lines.append(f"WARC-Date: {date}")
    if uri is not None:
        lines.append(f"WARC-Target-URI: {uri}")
    if content_type is None:
        content_type = "application/http; msgtype=response" if rtype == "response" else "application/octet-stream"
    lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    lines.append(f"Content-Length: {len(block) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"


def page(uri: str, html: str | bytes, *, charset: str = "utf-8", content_type: str | None = None,
         headers: dict[str, str] | None = None, **kw) -> bytes:
    body = html.encode(charset) if isinstance(html, str) else html
    ct = content_type if content_type is not None else f"text/html; charset={charset}"
    return record("response", uri, http_response(body, ct, headers), **kw)


def warcinfo() -> bytes:
    return record("warcinfo", None, b"software: test\r\n", content_type="application/warc-fields")


def request(uri: str) -> bytes:
    return record("request", uri, f"GET / HTTP/1.1\r\nHost: {uri}\r\n\r\n".encode(),
                  content_type="application/http; msgtype=request")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def build(records: list[bytes], compression: str = "record") -> bytes:
    """'record': one gzip member per record (Common Crawl); 'file': one member; 'none': plain."""
    if compression == "record":
        return b"".join(gz(r) for r in records)
    if compression == "file":
        return gz(b"".join(records))
    return b"".join(records)


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def deflate_gzip(body: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(body) + c.flush()


def wat_record(uri: str, imgs: list[tuple[str, str | None]], *, metas=None, headers=None, title=None,
               links=None, base=None, content_type: str = "text/html; charset=UTF-8",
               container: dict | None = None, record_id: str | None = None, date: str = DATE) -> bytes:
    """A Common Crawl WAT metadata record (JSON envelope) describing one HTML response.

    `container`: the JSON `Container` (Common Crawl: Filename, Compressed, Offset as a string).
    """
    head: dict = {"Metas": metas or []}
    if title is not None:
        head["Title"] = title
    if base is not None:
        head["Base"] = base
    doc = {
        "Container": container if container is not None else {"Filename": "x.warc.gz", "Compressed": True, "Offset": "0"},
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": uri, "WARC-Date": date,
                                     "WARC-Record-ID": record_id or f"<urn:uuid:{uuid.uuid4()}>"},
            "Payload-Metadata": {
                "Actual-Content-Type": "application/http; msgtype=response",
                "HTTP-Response-Metadata": {
                    "Headers": {"Content-Type": content_type, **(headers or {})},
                    "HTML-Metadata": {
                        "Head": head,
                        "Links": [{"path": "IMG@/src", "url": u, **({"alt": a} if a is not None else {})}
                                  for u, a in imgs] + (links or []),
                    },
                },
            },
        },
    }
    return record("metadata", uri, json.dumps(doc).encode(), content_type="application/json")


def real_warc_dir():
    """The shared real-WARC folder: $LAION_REAL_WARC_DIR, else ../shared/data/real-warc beside the repo."""
    import os
    from pathlib import Path

    env = os.environ.get("LAION_REAL_WARC_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real-warc"
