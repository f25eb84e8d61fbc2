"""HTTP response blocks inside WARC records: headers, chunked transfer encoding, gzip/deflate bodies.

Common Crawl stores payloads already decoded (and renames the original headers to X-Crawler-*), but
other crawlers (wget) keep `Transfer-Encoding: chunked` and `Content-Encoding: gzip` bodies as sent,
and browser/proxy capture tools keep the `chunked` header over a body they stored de-chunked.
Every decoder here is bounded: output stops at `max_bytes`, whatever the input claims.
"""

from __future__ import annotations

import re
import zlib


class HttpError(ValueError):
    """A response block that cannot be decoded; `reason` is a BAD_RECORD_REASONS key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# The end of the header block is the earliest blank line, whatever its line endings (a header block
# written with bare LF may be followed by a CRLF body: its first CRLF CRLF is deep inside the body).
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MAX_HEAD = 65536


def split_response(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, raw body) of an HTTP/1.x response block."""
    m = _BLANK_LINE.search(block, 0, _MAX_HEAD + 4)
    if m is None:
        if block.startswith(b"HTTP/") and len(block) < _MAX_HEAD:
            end, body_at = len(block), len(block)  # headers only (e.g. a truncated or empty response)
        else:
            raise HttpError("bad_http", "no end of HTTP headers")
    else:
        end, body_at = m.start(), m.end()
    head = block[:end].decode("latin-1")
    lines = head.split("\n")
    status_line = lines[0].strip()
    if not status_line.startswith("HTTP/"):
        raise HttpError("bad_http", f"status line {status_line[:60]!r}")
    parts = status_line.split(None, 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise HttpError("bad_http", f"status line {status_line[:60]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            value = value.strip()
            # Repeated headers (X-Robots-Tag may come twice) are joined as HTTP allows.
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, headers, block[body_at:]


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def dechunk(body: bytes, max_bytes: int = 1 << 62) -> bytes:
    """Decode `Transfer-Encoding: chunked`; a body cut short keeps what arrived (WARC-Truncated).

    Raises HttpError when the body is not chunked at all (the caller then falls back to the raw body)."""
    out = []
    have = 0
    pos = 0
    n = len(body)
    while pos < n and have < max_bytes:
        eol = body.find(b"\n", pos, pos + 1024)
        if eol < 0:
            if pos == 0:
                raise HttpError("bad_transfer_encoding", "no chunk-size line")
            break
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_field):
            raise HttpError("bad_transfer_encoding", f"chunk size {size_field[:20]!r} at {pos}")
        size = int(size_field, 16)
        if size == 0:
            break
        start = eol + 1
        piece = body[start : start + size]
        out.append(piece)
        have += len(piece)
        pos = start + size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1
        elif pos < n:
            raise HttpError("bad_transfer_encoding", f"chunk of {size} bytes at {start} not followed by a line end")
    return b"".join(out)[:max_bytes]


def gunzip_bounded(data: bytes, max_bytes: int, wbits: int = 47) -> tuple[bytes, bool]:
    """(at most max_bytes of decompressed data, whether the output was cut at max_bytes).

    The cap applies while decompressing: a small bomb never allocates more than max_bytes. A stream
    that stops early keeps what was decoded (what was served)."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, max_bytes)
    cut = bool(d.unconsumed_tail) and len(out) >= max_bytes
    return out, cut


def decode_content(body: bytes, encoding: str, truncated: bool = False, max_bytes: int = 1 << 62) -> bytes:
    """Undo gzip/deflate Content-Encoding, at most max_bytes out; a truncated stream keeps what was decoded."""
    enc = encoding.strip().lower()
    if enc in ("", "identity", "none"):
        return body
    if enc in ("gzip", "x-gzip", "deflate"):
        if enc != "deflate" and not body.startswith(b"\x1f\x8b") and body.lstrip()[:1] == b"<":
            return body  # header kept although the crawler stored the decoded payload
        err: Exception | None = None
        for wb in (15, -15) if enc == "deflate" else (47,):
            try:
                return gunzip_bounded(body, max_bytes, wb)[0]
            except zlib.error as e:
                err = e
        raise HttpError("bad_content_encoding", f"{enc}: {err}")
    raise HttpError("bad_content_encoding", f"unsupported Content-Encoding {enc!r}")


def decode_body(body: bytes, headers: dict[str, str], truncated: bool, max_bytes: int) -> tuple[bytes, list[str]]:
    """Transfer- then Content-Encoding undone, at most max_bytes out; (payload, warnings).

    `chunked` over a body that is not chunked (stored de-chunked by a capture tool) falls back to the
    raw body, which is then gunzipped when it starts with the gzip magic."""
    warnings = []
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            body = dechunk(body, max_bytes if not headers.get("content-encoding") else 1 << 62)
        except HttpError:
            warnings.append("chunked_header_over_plain_body")
    ce = headers.get("content-encoding")
    if ce:
        body = decode_content(body, ce, truncated, max_bytes)
    elif warnings and body[:2] == b"\x1f\x8b":
        try:
            body = gunzip_bounded(body, max_bytes)[0]
        except zlib.error as e:
            raise HttpError("bad_content_encoding", f"gzip magic without Content-Encoding: {e}") from None
    return body[:max_bytes] if len(body) > max_bytes else body, warnings
