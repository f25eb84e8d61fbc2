"""HTTP response blocks inside WARC records: headers, chunked transfer encoding, gzip/deflate bodies.

Common Crawl stores payloads already decoded (and renames the original headers to X-Crawler-*), but
other crawlers (wget) keep `Transfer-Encoding: chunked` and `Content-Encoding: gzip` bodies as sent.
"""

from __future__ import annotations

import zlib


class HttpError(ValueError):
    """A response block that cannot be decoded; `reason` is a BAD_RECORD_REASONS key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def split_response(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, raw body) of an HTTP/1.x response block."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = block.find(b"\n\n")
        sep = 2
    if end < 0:
        if block.startswith(b"HTTP/") and len(block) < 65536:
            end, sep = len(block), 0  # headers only (e.g. a truncated or empty response)
        else:
            raise HttpError("bad_http", "no end of HTTP headers")
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
    return status, headers, block[end + sep :]


def dechunk(body: bytes) -> bytes:
    """Decode `Transfer-Encoding: chunked`; a body cut short keeps what arrived (WARC-Truncated)."""
    out = []
    pos = 0
    n = len(body)
    while pos < n:
        eol = body.find(b"\n", pos)
        if eol < 0:
            break
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise HttpError("bad_transfer_encoding", f"chunk size {size_field[:20]!r} at {pos}") from None
        if size == 0:
            break
        start = eol + 1
        out.append(body[start : start + size])
        pos = start + size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1
    return b"".join(out)


def decode_content(body: bytes, encoding: str, truncated: bool) -> bytes:
    """Undo gzip/deflate Content-Encoding; a truncated stream keeps the bytes decoded so far."""
    enc = encoding.strip().lower()
    if enc in ("", "identity", "none"):
        return body
    if enc in ("gzip", "x-gzip", "deflate"):
        if enc != "deflate" and not body.startswith(b"\x1f\x8b") and body.lstrip()[:1] == b"<":
            return body  # header kept although the crawler stored the decoded payload
        wbits = 47 if enc != "deflate" else 15
        for wb in (wbits, -15) if enc == "deflate" else (wbits,):
            d = zlib.decompressobj(wb)
            try:
                out = d.decompress(body)
            except zlib.error as e:
                err = e
                continue
            # A stream that stops early (WARC-Truncated or not) keeps what was decoded: it is what was served.
            return out
        raise HttpError("bad_content_encoding", f"{enc}: {err}")
    raise HttpError("bad_content_encoding", f"unsupported Content-Encoding {enc!r}")
