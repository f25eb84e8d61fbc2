"""Fuzzing extraction (issue 10): mutated generated and real WARC/ARC bytes, hostile HTML.

Properties, for every case: no uncaught exception, no hang (per-case alarm), memory bounded (tracemalloc),
and every record before the damage still extracted, row for row; for hostile HTML, the blocking row
checks (the real DuckDB SQL) pass on the output. The smoke tests run in the default
suite (a few seconds); the campaign (>= 10k cases) is:

    LAION_REAL_WARC_DIR=/path/to/real-warc FUZZ_REPORT=/tmp/fuzz.json \
        pytest -m slow_fuzz laion_assets_tests/core/extract/test_extract_fuzz.py
"""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laion_assets_tests.core.extract import _extract_fuzz as F
from laion_assets_tests.core.extract._extract_warcgen import page

GEN = F.generated_records()
# Multi-member gzip files to damage: the real WARCs when the shared folder is there (as in CI), else
# the generated files compressed record by record, so the property is always exercised.
REAL = F.real_members() or {f"generated-{i}.warc.gz": [F.gz(r) for r in records] for i, records in enumerate(GEN)}
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def warc_case(seed: int, compression: str, keep: int, ops) -> None:
    """Mutate a generated file after its first `keep` records; those must come out unchanged."""
    records = GEN[seed]
    keep = min(keep, len(records) - 1)
    if compression == "file":
        plain, ends = F.frame(records, "none")
        cut = ends[keep - 1] if keep else 0
        tail = F.mutate(plain[cut:], ops)
        blob = gzip.compress(plain[:cut] + tail, mtime=0)
        prefix = gzip.compress(plain[:cut], mtime=0)
    else:
        blob0, ends = F.frame(records, compression)
        cut = ends[keep - 1] if keep else 0
        blob = blob0[:cut] + F.mutate(blob0[cut:], ops)
        prefix = blob0[:cut]
    F.STATS[f"warc_{compression}"] += 1
    with F.bounded(input_bytes=len(blob)):
        res = F.timed(F.extract, blob)
        want = F.rows(F.extract(prefix)) if keep else []
    got = F.rows(res)
    assert got[: len(want)] == want
    F.STATS["warc_bad_records"] += res.stats["bad_records"]
    F.STATS["warc_framing_warnings"] += res.stats["warc_framing_warnings"]
    F.STATS["warc_cut_records"] += res.stats["records_cut_at_eof"]


def real_case(name: str, keep: int, ops, recompress: bool) -> None:
    """Mutate a real file's gzip members after the first `keep` (raw bytes, or the decompressed tail)."""
    members = REAL[name]
    keep = min(keep, len(members) - 1)
    head = b"".join(members[:keep])
    tail = b"".join(members[keep:])
    if recompress:  # damage the records themselves, not only the gzip layer
        plain = b"".join(gzip.decompress(m) for m in members[keep:])
        blob = head + gzip.compress(F.mutate(plain, ops), mtime=0)
    else:
        blob = head + F.mutate(tail, ops)
    F.STATS["real_" + ("plain" if recompress else "gzip")] += 1
    with F.bounded(input_bytes=len(blob) * 8):
        res = F.timed(F.extract, blob)
        want = F.rows(F.extract(head)) if keep else []
    assert F.rows(res)[: len(want)] == want


def html_case(html: bytes) -> None:
    """A hostile page between two good ones: both good pages' rows are always there."""
    good = '<img src="/ok.jpg" alt="A good picture here">'
    blob = b"".join(gzip.compress(p, mtime=0) for p in
                    (page("http://a.com/", good), page("http://evil.com/", html, content_type="text/html"),
                     page("http://c.com/", good)))
    F.STATS["html"] += 1
    F.warm_once()
    with F.bounded(input_bytes=len(blob) * 4):
        res = F.timed(F.extract, blob, F.FULL)
    urls = res.table["url"].to_pylist()
    assert urls[0] == "http://a.com/ok.jpg" and urls[-1] == "http://c.com/ok.jpg"
    assert res.stats["bad_records"] <= 1  # only the hostile page itself may be refused (budget)
    assert F.blocking_check_failures(res) == []  # no row of a hostile page can fail the shard's checks
    F.STATS["html_rows"] += len(urls) - 2


warc_args = dict(seed=st.integers(0, len(GEN) - 1), compression=st.sampled_from(["record", "file", "none"]),
                 keep=st.integers(0, 3), ops=F.mutations(4000))
real_args = dict(name=st.sampled_from(sorted(REAL)), keep=st.integers(0, 4), ops=F.mutations(40_000),
                 recompress=st.booleans())


# ---- smoke: default run, a few seconds ---------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH, derandomize=True)
@given(**warc_args)
def test_fuzz_smoke_generated_warc(seed, compression, keep, ops):
    warc_case(seed, compression, keep, ops)


@settings(max_examples=15, deadline=None, suppress_health_check=HEALTH, derandomize=True)
@given(**real_args)
def test_fuzz_smoke_real_warc(name, keep, ops, recompress):
    real_case(name, keep, ops, recompress)


@settings(max_examples=30, deadline=None, suppress_health_check=HEALTH, derandomize=True)
@given(html=F.hostile_html())
def test_fuzz_smoke_hostile_html(html):
    html_case(html)


# ---- campaign: pytest -m slow_fuzz (>= 10k cases) ----------------------------------------------------
@pytest.mark.slow_fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=HEALTH)
@given(**warc_args)
def test_fuzz_campaign_generated_warc(seed, compression, keep, ops):
    warc_case(seed, compression, keep, ops)
    F.write_report()


@pytest.mark.slow_fuzz
@settings(max_examples=2500, deadline=None, suppress_health_check=HEALTH)
@given(**real_args)
def test_fuzz_campaign_real_warc(name, keep, ops, recompress):
    real_case(name, keep, ops, recompress)
    F.write_report()


@pytest.mark.slow_fuzz
@settings(max_examples=3000, deadline=None, suppress_health_check=HEALTH)
@given(html=F.hostile_html())
def test_fuzz_campaign_hostile_html(html):
    html_case(html)
    F.write_report()
