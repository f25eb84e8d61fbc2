"""FastWARC's native reader (gzip + record framing in Rust) on the hot path, proved record by record;
the tolerant reader (`warc.iter_records`) for every file, or the rest of a file, it cannot prove.

`read_records(f)` yields exactly what `iter_records(f)` yields (same `Record`s, same `BadRecord`s, same
order), whatever the input. FastWARC is taken only for what can be checked to be the plain Common Crawl
layout: a per-record gzip file where every gzip member holds exactly one record, `WARC/x.y` header +
`Content-Length` bytes + CRLF CRLF. Each record is held back until its member is proved to be that:

* the member is [its `stream_pos`, the next record's `stream_pos`) (or the end of the file for the last
  one): the gzip trailer in the last 8 compressed bytes of that range gives the member's CRC32 and
  decompressed size (ISIZE); both must equal those of header bytes (FastWARC keeps them verbatim:
  `HeaderMap.write`) + block + `\\r\\n\\r\\n`. A skipped gap, a junk member, bytes between members, a
  member holding more or less than its record, a non-standard trailer, a record split over members or
  several records in one member all fail it (CRC32 detects every error of 32 bits or less, such as a
  4-byte trailer that is not CRLF CRLF);
* the header block's first blank line is its end, it starts with `WARC/`, `Content-Length` (parsed by
  the tolerant reader's own rules) equals the block's length and is within `max_record_bytes`;
* the first record starts at the file's first byte, and FastWARC read the file to its end.

The headers are parsed by `warc._parse_headers` from those verbatim bytes, so a record has the same
headers, version and offset (the member's file offset) as the tolerant reader's. At the first record
that is not proved, or any exception FastWARC raises, the file is read again from its start by the
tolerant reader, which skips the records already given and yields the rest (bad records, framing
warnings, ARC, cut files, resynchronisation: everything in docs/extraction.md "Inputs"). Files that are
not gzip, or streams that cannot seek back, go to the tolerant reader directly.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Iterator

from .warc import _BLANK_LINE, BadRecord, Record, _parse_headers, iter_records

try:
    from fastwarc.warc import ArchiveIterator as _FastIterator
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - fastwarc and isal are main dependencies
    _FastIterator = None

_TRAILER = b"\r\n\r\n"


class _Doubt(Exception):
    """A record the fast path cannot prove equal to the tolerant reader's: read the file with that one."""


class _Tap:
    """The file as FastWARC reads it, keeping the compressed bytes not yet checked (from `base` on)."""

    __slots__ = ("f", "buf", "base", "eof", "_pending")

    def __init__(self, f: BinaryIO, first: bytes):
        self.f = f
        self.buf = bytearray(first)
        self.base = 0
        self.eof = not first
        self._pending = first

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = self.f.read(n if n is not None and n >= 0 else -1)
        if data:
            self.buf += data
        else:
            self.eof = True
        return data

    def tell(self) -> int:  # FastWARC asks for it (stream_pos); everything handed out is in buf's range
        return self.end - len(self._pending)

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def member_trailer(self, end: int) -> tuple[int, int] | None:
        """(CRC32, ISIZE) from the 8 bytes before `end`, None when they are not held."""
        lo = end - 8 - self.base
        if lo < 0 or end > self.end:
            return None
        t = self.buf[lo : lo + 8]
        return int.from_bytes(t[:4], "little"), int.from_bytes(t[4:], "little")

    def release(self, upto: int) -> None:
        drop = upto - self.base
        if drop > 0:
            del self.buf[:drop]
            self.base = upto


def read_records(
    f: BinaryIO, max_record_bytes: int = 64 * 1024 * 1024, info: dict | None = None
) -> Iterator[Record | BadRecord]:
    """Every record of a WARC/ARC/WAT file in order, as `warc.iter_records` gives them (module doc).

    `info` (optional) is filled with `fast_records` (records proved and given by FastWARC) and
    `fallback` (None, or why the tolerant reader read the file or its rest)."""
    info = {} if info is None else info
    info["fast_records"], info["fallback"] = 0, None
    if _FastIterator is None or not _seekable(f):
        info["fallback"] = "fastwarc missing" if _FastIterator is None else "stream cannot seek"
        yield from iter_records(f, max_record_bytes)
        return
    start = f.tell()
    first = f.read(65536)
    if first[:2] != b"\x1f\x8b":  # plain or ARC-like: the tolerant reader, from the bytes already read
        info["fallback"] = "not gzip"
        yield from iter_records(_Prefixed(first, f), max_record_bytes)
        return
    given = 0
    last_offset = None
    fast = _fast(_Tap(f, first), max_record_bytes)
    while True:
        try:
            rec = next(fast)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 - _Doubt, or whatever FastWARC raises on what it cannot read
            info["fallback"] = f"{type(e).__name__}: {e}"
            break
        except BaseException as e:  # a Rust panic surfaces as pyo3's PanicException (a BaseException)
            if type(e).__name__ != "PanicException":
                raise
            info["fallback"] = f"{type(e).__name__}: {e}"
            break
        yield rec  # outside the try: a consumer closing this generator is not a fallback
        given += 1
        info["fast_records"] = given
        last_offset = rec.offset
    fast.close()
    f.seek(start)
    for i, rec in enumerate(iter_records(f, max_record_bytes)):
        if i < given:
            if i == given - 1 and (not isinstance(rec, Record) or rec.offset != last_offset):
                raise AssertionError(f"tolerant reader disagrees with the proved records at offset {last_offset}")
            continue
        yield rec


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _Prefixed(io.RawIOBase):
    """`first` then the rest of `f` (the bytes read to tell gzip from plain are not lost)."""

    def __init__(self, first: bytes, f: BinaryIO):
        self.first, self.f = first, f

    def read(self, n: int = -1) -> bytes:
        if self.first:
            if n is None or n < 0:
                data, self.first = self.first + self.f.read(), b""
                return data
            data, self.first = self.first[:n], self.first[n:]
            return data
        return self.f.read(n)


def _fast(tap: _Tap, max_record_bytes: int) -> Iterator[Record]:
    held: tuple[Record, int, int, int] | None = None  # (record, member start, CRC32, ISIZE) not yet proved
    blank, parse, crc32 = _BLANK_LINE.search, _parse_headers, _crc32
    sink = io.BytesIO()
    for r in _FastIterator(tap, parse_http=False):
        pos = r.stream_pos
        if held is None:
            if pos != 0:
                raise _Doubt("first record not at the start of the file")
        else:
            yield _prove(tap, held, pos)
        sink.seek(0)
        sink.truncate()
        hlen = r.headers.write(sink)
        raw = sink.getvalue()
        if len(raw) != hlen or not raw.startswith(b"WARC/"):
            raise _Doubt("header bytes")
        m = blank(raw)
        if m is None or m.end(1) != hlen:
            raise _Doubt("header block does not end at its first blank line")
        version, headers = parse(raw[: m.start(1) + 1])
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            raise _Doubt("Content-Length") from None
        if length < 0 or length > max_record_bytes or r.content_length != length:
            raise _Doubt("Content-Length")
        block = r.reader.read()
        if len(block) != length:
            raise _Doubt("block length")
        crc = crc32(_TRAILER, crc32(block, crc32(raw)))
        held = (Record(pos, headers, block, version), pos, crc, (hlen + length + 4) & 0xFFFFFFFF)
    if held is not None:
        while not tap.eof:  # FastWARC stopped before the end of the file: only the empty read may be left
            if tap.read(65536):
                raise _Doubt("bytes after the last record")
        yield _prove(tap, held, tap.end)


def _prove(tap: _Tap, held: tuple[Record, int, int, int], end: int) -> Record:
    rec, start, crc, isize = held
    if end - start < 18 + 8 or tap.member_trailer(end) != (crc, isize):
        raise _Doubt(f"gzip member at {start} is not exactly its record")
    tap.release(end)
    return rec
