"""FastWARC on the hot path (fastread.read_records) gives exactly what the tolerant reader gives:
record for record on real WARCs, on generated ones, on every framing quirk and on mutated files; and
whole extractions (tables, errors, stats) are equal between the FastWARC path and the fallback path."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.extract.fastread import read_records
from laion_assets.core.extract.warc import iter_records
from laion_assets_tests.core.extract._extract_fuzz import frame, generated_records, mutate, mutations
from laion_assets_tests.core.extract._extract_warcgen import build, page, real_warc_dir, record, request, warcinfo

IMG = '<html><head><title>T</title></head><body><img src="/cat{i}.jpg" alt="A sleepy orange cat {i}"></body></html>'


def dump(items) -> list[tuple]:
    out = []
    for r in items:
        if hasattr(r, "block"):
            out.append(("R", r.offset, dict(r.headers), r.block, r.version, r.cut, r.framing_warning))
        else:
            out.append(("B", r.offset, r.reason, r.detail, r.target_uri))
    return out


def both(data: bytes) -> tuple[list, list, dict]:
    info: dict = {}
    fast = dump(read_records(io.BytesIO(data), info=info))
    return fast, dump(iter_records(io.BytesIO(data))), info


def pages(n: int) -> list[bytes]:
    return [warcinfo(), request("http://h.com/")] + [page(f"http://h{i}.com/p", IMG.format(i=i)) for i in range(n)]


def real_files():
    d = real_warc_dir()
    return sorted(d.glob("*.warc.gz")) if d.is_dir() else []


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_real_warcs_are_read_by_fastwarc_record_for_record(path):
    fast, tolerant, info = both(path.read_bytes())
    assert fast == tolerant and len(fast) > 0
    assert info["fallback"] is None and info["fast_records"] == len(fast)  # every record came from FastWARC


def test_generated_per_record_gzip_is_read_by_fastwarc():
    data = build(pages(30), "record")
    fast, tolerant, info = both(data)
    assert fast == tolerant and info["fallback"] is None and info["fast_records"] == 32


def _std(i: int, trailer: bytes = b"\r\n\r\n") -> bytes:
    return page(f"http://q{i}.com/", IMG.format(i=i))[:-4] + trailer


G = gzip.compress
QUIRKS = {  # name -> (file bytes, whether FastWARC may give every record)
    "clean": (G(_std(0)) + G(_std(1)) + G(_std(2)), True),
    "trailer CRLF": (G(_std(0, b"\r\n")) + G(_std(1)), False),
    "trailer LF": (G(_std(0, b"\n")) + G(_std(1)), False),
    "no trailer": (G(_std(0, b"")) + G(_std(1)), False),
    "trailer of 6": (G(_std(0, b"\r\n\r\n\r\n")) + G(_std(1)), False),
    "trailer not blank": (G(_std(0, b"abcd")) + G(_std(1)), False),
    "NULs after trailer": (G(_std(0, b"\r\n\r\n\x00\x00")) + G(_std(1)), False),
    "junk bytes between members": (G(_std(0)) + b"garbage!!" + G(_std(1)), False),
    "NULs between members": (G(_std(0)) + b"\x00\x00\x00" + G(_std(1)), False),
    "junk member": (G(_std(0)) + G(b"hello junk\n") + G(_std(1)), False),
    "junk member, no newline": (G(_std(0)) + G(b"hello junk") + G(_std(1)), False),
    "empty member": (G(_std(0)) + G(b"") + G(_std(1)), False),
    "member holds more": (G(_std(0) + b"extra bytes") + G(_std(1)), False),
    "two records per member": (G(_std(0) + _std(1)) + G(_std(2)), False),
    "record split over members": (G(_std(0)[:50]) + G(_std(0)[50:]) + G(_std(1)), False),
    "whole-file gzip": (G(_std(0) + _std(1)), False),
    "Content-Length +3": (G(record("response", "http://a/", b"HTTP/1.1 200 OK\r\n\r\n<html>", length=27)) + G(_std(1)), False),
    "Content-Length -3": (G(record("response", "http://a/", b"HTTP/1.1 200 OK\r\n\r\n<html>", length=21)) + G(_std(1)), False),
    "Content-Length not a number": (G(_std(0).replace(b"Content-Length: ", b"Content-Length: x")) + G(_std(1)), False),
    "bare-LF WARC headers": (G(_std(0).replace(b"\r\n", b"\n", 6)) + G(_std(1)), False),
    "folded header": (G(_std(0).replace(b"WARC-Date:", b"X-Folded: a\r\n  b\r\nWARC-Date:")) + G(_std(1)), True),
    "duplicate header": (G(_std(0).replace(b"WARC-Date:", b"WARC-Target-URI: http://dup/\r\nWARC-Date:")) + G(_std(1)), True),
    "no space after colon": (G(_std(0).replace(b"WARC-Date: ", b"WARC-Date:")) + G(_std(1)), True),
    "header not UTF-8": (G(_std(0).replace(b"WARC-Date:", b"X-Bytes: \xff\xfe\r\nWARC-Date:")) + G(_std(1)), True),
    "WARC/0.18": (G(_std(0).replace(b"WARC/1.0", b"WARC/0.18", 1)) + G(_std(1)), True),
    "file cut in last member": (G(_std(0)) + G(_std(1))[:-30], False),
    "corrupt member": (G(_std(0)) + G(_std(1))[:20] + b"\x00" * 10 + G(_std(1))[30:] + G(_std(2)), False),
    "NULs at end of file": (G(_std(0)) + G(_std(1)) + b"\x00" * 20, False),
    "leading junk": (b"\x1f\x8bjunk" + G(_std(0)), False),
    "plain WARC": (_std(0) + _std(1), False),
}


@pytest.mark.parametrize("name", list(QUIRKS))
def test_framing_quirks_give_the_tolerant_readers_records(name):
    data, fast_ok = QUIRKS[name]
    fast, tolerant, info = both(data)
    assert fast == tolerant
    if fast_ok:
        assert info["fallback"] is None and info["fast_records"] == len(fast)
    else:  # the quirk was not let through by FastWARC: the tolerant reader read at least its record
        assert info["fallback"] is not None and info["fast_records"] < len(fast)


def test_fallback_after_proved_records_keeps_them_once():
    """Damage in the middle: records before it come from FastWARC, the rest from the tolerant reader,
    none twice, none lost."""
    recs = pages(6)
    data = b"".join(G(r) for r in recs[:5]) + b"junk between members" + b"".join(G(r) for r in recs[5:])
    fast, tolerant, info = both(data)
    assert fast == tolerant and info["fast_records"] == 4 and info["fallback"] is not None
    assert [r[0] for r in fast].count("B") == 1


_SEEDS = [frame(recs, "record")[0] for recs in generated_records()]  # built once: record ids are random


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, len(_SEEDS) - 1), data=st.data())
def test_mutated_files_give_the_tolerant_readers_records(seed, data):
    raw = _SEEDS[seed]
    mutated = mutate(raw, data.draw(mutations(len(raw))))
    fast, tolerant, _ = both(mutated)
    assert fast == tolerant


class _NoSeek(io.RawIOBase):
    """A stream that cannot seek back (a pipe): the tolerant reader reads it."""

    def __init__(self, data: bytes):
        self.b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        return self.b.read(n)


def _result(paths_or_bytes, open_fn, fmt="warc"):
    cfg = ExtractConfig(input_format=fmt, max_bad_record_ratio=1.0)
    r = extract_shard(paths_or_bytes, crawl="X", config=cfg, open_fn=open_fn)
    return r.table, r.errors, r.stats


def test_non_seekable_stream_is_read_by_the_tolerant_reader():
    info: dict = {}
    list(read_records(_NoSeek(build(pages(2))), info=info))
    assert info["fallback"] == "stream cannot seek" and info["fast_records"] == 0


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_extraction_equal_on_fastwarc_and_fallback_paths_real(path):
    data = path.read_bytes()
    fast = _result([path.name], lambda _: io.BytesIO(data))
    slow = _result([path.name], lambda _: _NoSeek(data))
    assert fast[0].equals(slow[0]) and fast[1].equals(slow[1]) and fast[2] == slow[2]


def test_extraction_equal_on_fastwarc_and_fallback_paths_generated(tmp_path):
    """A generated per-record gzip WARC of many pages, and one with damage in the middle."""
    recs = pages(200)
    clean = build(recs)
    damaged = build(recs[:100]) + b"\x00junk" + G(_std(7, b"\n")) + build(recs[100:])
    for data in (clean, damaged):
        fast = _result(["g.warc.gz"], lambda _: io.BytesIO(data))
        slow = _result(["g.warc.gz"], lambda _: _NoSeek(data))
        assert fast[0].equals(slow[0]) and fast[1].equals(slow[1]) and fast[2] == slow[2]
        assert fast[2]["pairs_kept"] >= 200
