"""A tolerant, fast WARC and ARC record reader (WARC/0.17, 0.18, 1.0, 1.1, Internet Archive ARC v1/v2;
uncompressed, per-record or whole-file gzip).

Why not warcio: its per-record Python stream stack is the slowest part of a bare extraction loop, and it
stops at the first corrupt gzip member. Here the file is one continuous decompressed byte stream (gzip
members are decompressed back to back, so per-record, whole-file and block gzip all read the same), the
record framing is checked against the bytes (`Content-Length` + the CRLF CRLF trailer), and on any
damage the reader yields a `BadRecord` and resynchronises at the next gzip member or `WARC/` line.
Tolerance follows warcio/FastWARC: a trailer of one line ending, none, or stray NULs/blanks between
records is accepted and counted (`Record.framing_warning`); a file cut inside its last record yields
the part that is there (`Record.cut`). Every scan is linear and memory stays bounded by the record
size cap plus a few MiB, whatever the (decompressed) size of damage between records.

Record offsets: for per-record gzip (Common Crawl), the file offset of the gzip member that starts the
record (what a byte-range request needs); for uncompressed files, the record's byte offset; for a
whole-file gzip, the offset in the decompressed stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .gzipstream import _CHUNK, _RAW_CHUNK, _Stream

_MAX_HEADER = 64 * 1024
# A record starts with a `WARC/x.y` line or an ARC header line (`URL IP 14-digit-date type ... length`).
_ARC_LINE = rb"(?:https?|dns|ftp|filedesc|whois|mailto|file):[^\s]* [^\s]+ [0-9]{12,14} [^\r\n]{0,4000}? [0-9]+\r?\n"
_RECORD_START = re.compile(rb"\n(WARC/[0-9]+\.[0-9]+\r?\n|" + _ARC_LINE + rb")")
_ARC_HEAD = re.compile(rb"(" + _ARC_LINE + rb")")
_BLANK_LINE = re.compile(rb"(\n\r?\n)")
_BLANKS = b"\r\n\t \x00"
# Bytes decompressed ahead when looking for the next gzip member after damage (bounds resync work).
_RESYNC_WINDOW = 4 * _CHUNK


@dataclass(slots=True)
class Record:
    offset: int
    headers: dict[str, str]  # lower-cased names, first occurrence wins
    block: bytes
    version: str
    cut: bool = False  # the file ended inside this record: `block` is the part that is there
    framing_warning: str | None = None  # a tolerated framing quirk after this record (non-CRLF CRLF trailer)

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "").lower()

    @property
    def target_uri(self) -> str | None:
        uri = self.headers.get("warc-target-uri")
        if uri is None:
            return None
        uri = uri.strip()
        if uri.startswith("<") and uri.endswith(">"):  # WARC/1.0 grammar as some writers (wget) apply it
            uri = uri[1:-1].strip()
        return uri


@dataclass(slots=True)
class BadRecord:
    offset: int | None
    reason: str
    detail: str
    target_uri: str | None = None


def _parse_headers(raw: bytes) -> tuple[str, dict[str, str]]:
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n")
    version = lines[0].strip()
    headers: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t" and last:  # folded continuation line
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        headers.setdefault(last, value.strip())
    return version, headers


def _arc_headers(line: bytes) -> tuple[str, dict[str, str]] | None:
    """WARC-style headers for an ARC v1 (5 fields) or v2 (10 fields) header line; None if it is not one."""
    fields = line.rstrip(b"\r\n").decode("utf-8", "replace").split(" ")
    if len(fields) not in (5, 10) or not fields[-1].isdigit() or not fields[2].isdigit():
        return None
    url, date, ctype = fields[0], fields[2], fields[3]
    iso = f"{date[0:4]}-{date[4:6]}-{date[6:8]}T{date[8:10]}:{date[10:12]}:{date[12:14] or '00'}Z"
    if url.startswith("filedesc:"):
        rtype = "warcinfo"
    elif url.lower().startswith(("http:", "https:")):
        rtype = "response"
        ctype = "application/http; msgtype=response"
    else:  # dns:, ftp:, ... : the block is the payload itself
        rtype = "resource"
    version = "ARC/1" if len(fields) == 5 else "ARC/2"
    return version, {"warc-type": rtype, "warc-target-uri": url, "warc-date": iso, "content-type": ctype,
                     "content-length": fields[-1], "arc-ip-address": fields[1], "arc-content-type": fields[3]}


class _Reader:
    """State of one pass over a file: the stream, the header-end memo and coalesced header damage."""

    def __init__(self, f: BinaryIO, max_record_bytes: int, read_size: int):
        self.s = _Stream(f, read_size)
        self.max_record_bytes = max_record_bytes
        # No blank line lies in [memo_lo, memo_hi): a later header search starting inside skips it.
        self.memo_lo = self.memo_hi = -1
        self.pending: BadRecord | None = None  # consecutive "header has no end" damage, one row
        self.pending_n = 0

    def header_end(self, start: int) -> tuple[int, int]:
        """(start, end) of the blank line ending the header block at `start`, (-1, -1) if none within
        _MAX_HEADER. Linear over a run of damaged starts: bytes already searched are not searched again."""
        s = self.s
        lo = start
        if self.memo_lo <= start < self.memo_hi:
            lo = max(start, self.memo_hi - 3)
        limit = start + _MAX_HEADER
        if lo >= limit:
            return -1, -1
        h0, h1 = s.find(_BLANK_LINE, lo, limit)
        if h0 < 0:
            self.memo_lo, self.memo_hi = start, min(limit, s.end)
            return -1, -1
        return h0 + 1, h1  # the blank line's own first \n ends the last header line

    def skip_to_record(self, pos: int) -> tuple[int, bool, bytes]:
        """(next record start at/after pos or -1, whether the skipped bytes hold more than blanks, a preview).

        Skipped bytes are released as they are scanned: memory stays bounded whatever the gap's size."""
        s = self.s
        content, preview = False, b""
        while True:
            s.ensure(pos + 1)
            lo, hi = pos - s.base, s.end - s.base
            if not content:  # blanks and NULs (any number) straight before a record: not damage
                chunk = s.buf[lo : min(hi, lo + 4096)]
                k = len(chunk) - len(chunk.lstrip(_BLANKS))
                if k == len(chunk) and k:
                    pos = s.base + lo + k
                    s.release(pos)
                    if pos < s.end or s._fill():
                        continue
                    return -1, False, b""
                at = s.base + lo + k
                s.ensure(at + 4200)
                if s.buf.startswith(b"WARC/", at - s.base) or _ARC_HEAD.match(s.buf, at - s.base, min(s.end, at + 4200) - s.base):
                    return at, False, b""
            m = _RECORD_START.search(s.buf, max(lo - 1, 0), hi)
            stop = s.base + m.start(1) if m else max(s.end - 4096, pos)
            if s.gzip:  # a gzip member starting with a record is one, whatever the member before it held
                at = self.member_record_start(pos, stop if m else s.end)
                if at is not None:
                    stop, m = at, True
            chunk = s.buf[lo : stop - s.base]
            if chunk.strip(_BLANKS):
                if not content:
                    preview = bytes(chunk.lstrip(_BLANKS)[:40])
                content = True
            if m:
                return stop, content, preview
            pos = stop
            s.release(pos)
            # at end of file, a member start already read ahead (by a look-ahead above) is still a record
            if not s._fill() and (not s.gzip or self.member_record_start(pos, s.end) is None):
                rest = s.get(pos, s.end)
                if rest.strip(_BLANKS):
                    if not content:
                        preview = rest.lstrip(_BLANKS)[:40]
                    content = True
                return -1, content, preview

    def member_record_start(self, lo: int, hi: int) -> int | None:
        """The first gzip member start in [lo, hi] whose bytes begin a WARC or ARC record, else None.

        The record-start regex wants a line break before `WARC/`; a member holding junk without a
        final newline (nested gzip, binary) would otherwise hide the good record in the next member."""
        s = self.s
        cands = []
        for p in reversed(s.member_starts):  # positions increase: walk back only over the window
            if p < lo:
                break
            if p <= hi:
                cands.append(p)
        for p in reversed(cands):
            s.ensure(p + 4200)
            i = p - s.base
            if s.buf.startswith(b"WARC/", i) or _ARC_HEAD.match(s.buf, i, min(s.end, p + 4200) - s.base):
                return p
        return None

    def resync_point(self, start: int) -> int | None:
        """Where to look for the next record after a damaged one starting at `start`."""
        s = self.s
        if s.gzip and start in s.member_starts:
            nm = s.next_member_start(start)
            while nm is None and not s.eof and s.end - start < _RESYNC_WINDOW:
                s._fill()
                nm = s.next_member_start(start)
            if nm is not None and s.members_seen > 1:
                return nm
        m0, _, _ = self.skip_to_record(start + 1)
        return None if m0 < 0 else m0

    def flush(self) -> Iterator[BadRecord]:
        if self.pending is not None:
            if self.pending_n > 1:
                self.pending.detail += f" ({self.pending_n} consecutive record starts without a header end)"
            yield self.pending
            self.pending, self.pending_n = None, 0


def iter_records(
    f: BinaryIO, max_record_bytes: int = 64 * 1024 * 1024, read_size: int = _RAW_CHUNK
) -> Iterator[Record | BadRecord]:
    """Yield every record of a WARC, ARC (or WAT) file in order; damaged ones as `BadRecord`, never raising.

    `read_size` is how many compressed bytes are read at a time (records never depend on it)."""
    r = _Reader(f, max_record_bytes, read_size)
    s = r.s
    pos = 0
    while True:
        s.ensure(pos + 16)
        head = s.get(pos, min(s.end, pos + 16))
        if not head:
            yield from r.flush()
            yield from _pending_breaks(s, s.end)
            return
        arc = None
        if not head.startswith(b"WARC/"):
            arc = _ARC_HEAD.match(s.buf, pos - s.base, min(s.end, pos + 4200) - s.base) if head[:1].isalpha() else None
            if arc is None:
                m0, content, preview = r.skip_to_record(pos)
                if content:
                    yield from r.flush()
                    where = "before end of file" if m0 < 0 else "before the next record"
                    yield BadRecord(s.offset_of(pos), "bad_warc_header", f"bytes {where}: {preview!r}")
                if m0 < 0:
                    yield from r.flush()
                    yield from _pending_breaks(s, s.end)
                    return
                pos = m0
                continue
        # Damage between records (a gzip member that gave no bytes at all) is a lost record of its own.
        for b in _pending_breaks(s, pos):
            yield from r.flush()
            yield b
        start = pos
        if arc is not None:
            h1 = s.base + arc.end(1)
            version, headers = _arc_headers(s.get(start, h1)) or ("", {})
            if not headers:
                arc = None
        if arc is None:
            h0, h1 = r.header_end(start)
            if h0 < 0:
                b = s.break_in(start, s.end)
                if b:
                    s.breaks.remove(b)
                reason = b[1] if b else ("truncated_record" if s.eof and s.end - start < _MAX_HEADER else "bad_warc_header")
                if r.pending is not None and r.pending.reason == reason and not b:
                    r.pending_n += 1
                else:
                    yield from r.flush()
                    r.pending, r.pending_n = BadRecord(s.offset_of(start), reason, "header block has no end"), 1
                nxt = r.resync_point(start)
                if nxt is None:
                    yield from r.flush()
                    return
                pos = nxt
                s.release(pos)
                continue
            version, headers = _parse_headers(s.get(start, h0))
        yield from r.flush()
        offset = s.offset_of(start)
        uri = headers.get("warc-target-uri")
        cl = headers.get("content-length", "")
        try:
            length = int(cl)
            if length < 0:
                raise ValueError
        except ValueError:
            yield BadRecord(offset, "bad_content_length", f"Content-Length {cl!r}", uri)
            nxt = r.resync_point(start)
            if nxt is None:
                return
            pos = nxt
            s.release(pos)
            continue
        if length > max_record_bytes:
            yield BadRecord(offset, "record_too_large", f"Content-Length {length} > {max_record_bytes}", uri)
            nxt = r.resync_point(start)
            if nxt is None:
                return
            pos = nxt
            s.release(pos)
            continue
        body_end = h1 + length
        have = s.ensure(body_end + 64)
        brk = s.break_in(start, min(have, body_end + 4))
        if brk is not None and brk[0] <= body_end:
            s.breaks.remove(brk)
            if brk[1] == "truncated_gzip" and brk[0] > h1:  # the file ends inside this record: keep what is there
                yield Record(offset, headers, s.get(h1, brk[0]), version, cut=True)
                return
            yield BadRecord(offset, brk[1], brk[2], uri)
            pos = brk[0]
            s.release(pos)
            continue
        if have < body_end:
            if have > h1:
                yield Record(offset, headers, s.get(h1, have), version, cut=True)
            else:
                yield BadRecord(offset, "truncated_record", f"block has 0 of {length} declared bytes", uri)
            yield from _pending_breaks(s, s.end)
            return
        trailer = s.get(body_end, have)
        warning = None
        next_pos = body_end
        if not trailer.startswith(b"\r\n\r\n" if arc is None else b"\n"):
            rest = trailer.lstrip(_BLANKS)
            next_ok = (not rest or rest.startswith(b"WARC/")
                       or (rest[:1].isalpha() and _ARC_HEAD.match(rest) is not None)
                       or (body_end + len(trailer) - len(rest)) in s.member_starts)
            if not next_ok:
                # The declared length is wrong: the record does not end where it says.
                nxt = r.resync_point(start)
                yield BadRecord(offset, "length_mismatch",
                                f"Content-Length {length} not followed by a record end (got {trailer[:8]!r})", uri)
                if nxt is None:
                    return
                pos = nxt
                s.release(pos)
                continue
            blank_len = len(trailer) - len(rest)
            sep = trailer[:blank_len][:8]
            if rest:
                next_pos = body_end + blank_len
            warning = f"record trailer {sep!r} instead of {'CRLF CRLF' if arc is None else 'LF'}"
        # A per-record gzip member must end with its record: a longer member means the length lies short.
        if s.gzip and start in s.member_starts:
            nm = s.next_member_start(start)
            if nm is not None and nm > body_end + 4 + 2:
                tail = s.get(body_end, nm)
                if tail.strip(_BLANKS):
                    yield BadRecord(offset, "length_mismatch", f"gzip member holds {nm - body_end} bytes after the declared block", uri)
                    pos = nm
                    s.release(pos)
                    continue
        yield Record(offset, headers, s.get(h1, body_end), version, framing_warning=warning)
        pos = next_pos
        s.release(pos)


def _pending_breaks(s: _Stream, upto: int) -> Iterator[BadRecord]:
    while s.breaks and s.breaks[0][0] <= upto:
        pos, reason, detail, file_offset = s.breaks.pop(0)
        yield BadRecord(file_offset, reason, detail)
