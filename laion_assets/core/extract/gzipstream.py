"""The decompressed byte stream of a WARC/ARC file: gzip members back to back, absolute positions, breaks.

Split from warc.py (record framing lives there). Per-record, whole-file and block gzip all read as one
stream; a corrupt or cut member is recorded as a break (position, reason) and reading resumes at the
next gzip magic. Memory: what the caller has not released, plus one decompression step (4 MiB).
"""

from __future__ import annotations

import re
import zlib
from typing import BinaryIO

try:  # ISA-L's inflate (same API and output as zlib's, ~2x faster); zlib where the wheel is missing
    from isal import isal_zlib as _inflate

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate.error)
except ImportError:  # pragma: no cover - isal is a main dependency
    _inflate = zlib
    _INFLATE_ERRORS = (zlib.error,)

_GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 1 << 20
# Compressed bytes read at a time. Small on purpose: at the end of each gzip member zlib copies the rest of
# the input into `unused_data`, so a 1 MiB buffer meant ~0.5 MB copied per record (~1/3 of reading time).
_RAW_CHUNK = 64 * 1024


class _Stream:
    """Decompressed bytes of a WARC file with absolute positions, gzip member starts and breaks."""

    def __init__(self, f: BinaryIO, read_size: int = _RAW_CHUNK):
        self.f = f
        self.read_size = read_size
        self.raw = f.read(read_size)
        self.raw_off = 0  # file offset of raw[0]
        while 0 < len(self.raw) < 2 and self._read_raw():  # the gzip test needs 2 bytes
            pass
        self.gzip = self.raw[:2] == b"\x1f\x8b"
        self.buf = bytearray()
        self.base = 0  # stream position of buf[0]
        self.eof = False
        self.member_starts: dict[int, int] = {}  # stream position -> file offset of that gzip member
        self.members_seen = 0
        self.breaks: list[tuple[int, str, str, int]] = []  # (stream pos, reason, detail, file offset)
        self._d = None
        if self.gzip:
            self._new_member()

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def _new_member(self) -> None:
        self._d = _inflate.decompressobj(31)
        self.member_starts[self.end] = self.raw_off
        self.members_seen += 1

    def _read_raw(self) -> bool:
        more = self.f.read(self.read_size)
        if not more:
            return False
        self.raw += more
        return True

    def _resync_gzip(self, start: int) -> bool:
        """Skip raw bytes to the next gzip magic at or after raw[start]; False when none is left."""
        while True:
            i = self.raw.find(_GZIP_MAGIC, start)
            if i >= 0:
                self.raw_off += i
                self.raw = self.raw[i:]
                return True
            keep = max(len(self.raw) - 2, 0)
            self.raw_off += keep
            self.raw = self.raw[keep:]
            start = 0
            if not self._read_raw():
                return False

    def _fill(self) -> bool:
        """Append more decompressed bytes to buf; False at end of file."""
        if self.eof:
            return False
        if not self.gzip:
            data = self.f.read(_CHUNK) if not self.raw else self.raw
            self.raw = b""
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True
        while True:
            if not self.raw and not self._read_raw():
                if self._d is not None and (self._d.unconsumed_tail or not self._d.eof):
                    if self.end not in self.member_starts:  # a member was begun and not finished
                        self.breaks.append((self.end, "truncated_gzip", "file ends inside a gzip member", self.raw_off))
                self.eof = True
                return False
            d = self._d
            try:
                out = d.decompress(self.raw, _CHUNK * 4)
            except _INFLATE_ERRORS as e:
                bad_at = self.raw_off
                self.breaks.append((self.end, "gzip_error", str(e), bad_at))
                if not self._resync_gzip(1):
                    self.eof = True
                    return False
                self._new_member()
                return True
            consumed = len(self.raw) - len(d.unconsumed_tail) - len(d.unused_data)
            if d.eof:
                rest = d.unused_data
                self.raw_off += len(self.raw) - len(rest)
                self.raw = rest
                if out:
                    self.buf += out
                # the next member's magic may be cut by the read boundary: have 2 bytes before testing it
                while len(self.raw) < 2 and self._read_raw():
                    pass
                if not self.raw:
                    self.eof = True
                    self._d = None
                    return bool(out)
                if not self.raw.startswith(b"\x1f\x8b"):
                    if not self.raw.strip(b"\x00\r\n\t "):
                        self.raw_off += len(self.raw)
                        self.raw = b""
                        continue  # padding between members / at the end
                    self.breaks.append((self.end, "gzip_error", "bytes between gzip members are not gzip", self.raw_off))
                    if not self._resync_gzip(0):
                        self.eof = True
                        return bool(out)
                self._new_member()
                if out:
                    return True
                continue
            self.raw_off += consumed
            self.raw = self.raw[consumed:]
            if out:
                self.buf += out
                return True

    def ensure(self, pos: int) -> int:
        """Fill until the stream covers `pos` (exclusive) or ends; returns the covered end."""
        while self.end < pos and self._fill():
            pass
        return min(self.end, pos)

    def find(self, sub: bytes | re.Pattern, start: int, limit: int) -> tuple[int, int]:
        """Absolute (start, end) of the first match of `sub` in [start, limit), or (-1, -1)."""
        scanned = start
        while True:
            lo = max(scanned - 8, start) - self.base
            hi = min(self.end, limit) - self.base
            if isinstance(sub, bytes):
                i = self.buf.find(sub, lo, hi)
                if i >= 0:
                    return self.base + i, self.base + i + len(sub)
            else:
                m = sub.search(self.buf, lo, hi)
                if m:
                    return self.base + m.start(1), self.base + m.end(1)
            scanned = self.base + hi
            if scanned >= limit or not self._fill():
                return -1, -1

    def get(self, start: int, end: int) -> bytes:
        return bytes(self.buf[start - self.base : end - self.base])

    def release(self, pos: int) -> None:
        drop = pos - self.base
        if drop > _CHUNK:
            del self.buf[:drop]
            self.base = pos
            for p in [p for p in self.member_starts if p < pos]:
                del self.member_starts[p]

    def offset_of(self, pos: int) -> int:
        if not self.gzip:
            return pos
        return self.member_starts.get(pos, pos)

    def break_in(self, start: int, end: int) -> tuple[int, str, str, int] | None:
        for b in self.breaks:
            if start < b[0] <= end:
                return b
        return None

    def next_member_start(self, after: int) -> int | None:
        cands = [p for p in self.member_starts if p > after]
        return min(cands) if cands else None
