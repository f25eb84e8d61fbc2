"""The stage's DuckDB checks pass on a real extraction and fail on data built to break each one."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets_tests.core.extract._extract_warcgen import real_warc_dir
from laion_assets.core.extract import extract_shard, stats_table
from laion_assets.core.extract.checks import CHECKS
from laion_assets.core import checks as quality
from laion_assets.core.schemas.pairs import PAIR_ERROR_SCHEMA, PAIR_SCHEMA

REAL = real_warc_dir()
GOOD_ROW = {
    "key": "000000000", "url": "https://example.com/a.jpg", "text": "A red bicycle", "page_url": "https://example.com/",
    "crawl": "CC-MAIN-2024-22", "warc_path": "s3://x/a.warc.gz", "warc_offset": 0, "warc_record_id": "<urn:uuid:1>",
    "warc_date": "2024-05-20T00:00:00Z", "page_title": None, "page_language": "en", "caption_language": "en",
    "caption_language_score": 0.9, "caption_language_reliable": True, "license": None, "optout_page": False,
    "optout_reasons": None,
}
GOOD_STATS = {"records_read": 100, "bad_records": 1, "bad_record_ratio": 0.01}


def _write(tmp_path, rows, stats=GOOD_STATS, errors=1):
    views = {"pairs": tmp_path / "pairs.parquet", "pair_errors": tmp_path / "errors.parquet",
             "pair_stats": tmp_path / "stats.parquet"}
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), views["pairs"])
    err = [{"crawl": "c", "warc_path": "p", "warc_offset": 1, "target_uri": None, "reason": "gzip_error",
            "detail": ""}] * errors
    pq.write_table(pa.Table.from_pylist(err, schema=PAIR_ERROR_SCHEMA), views["pair_errors"])
    pq.write_table(stats_table(stats), views["pair_stats"])
    return views


def _outcomes(views, params=None):
    return {o.name: o for o in quality.run_checks(views, CHECKS, params)}


def test_quality_run_checks_itself(tmp_path):
    outcomes = quality.run_checks(_write(tmp_path, _rows()), CHECKS)
    assert all(o.passed for o in outcomes)


def _rows(**changes):
    second = {**GOOD_ROW, "key": "000000001", "url": "http://example.org/b.png", "text": "Another caption"}
    return [GOOD_ROW, {**second, **changes}]


def test_checks_pass_on_good_rows(tmp_path):
    out = _outcomes(_write(tmp_path, _rows()))
    assert all(o.passed for o in out.values()), {n: o.sample for n, o in out.items() if not o.passed}


@pytest.mark.skipif(not REAL.is_dir(), reason="real WARC folder not present")
def test_checks_pass_on_real_extraction(tmp_path):
    res = extract_shard([str(p) for p in sorted(REAL.glob("*.warc.gz"))], crawl="CC-TEST")
    views = {"pairs": tmp_path / "p.parquet", "pair_errors": tmp_path / "e.parquet", "pair_stats": tmp_path / "s.parquet"}
    pq.write_table(res.table, views["pairs"])
    pq.write_table(res.errors, views["pair_errors"])
    pq.write_table(stats_table(res.stats), views["pair_stats"])
    out = _outcomes(views)
    assert all(o.passed for o in out.values()), {n: o.sample for n, o in out.items() if not o.passed}


@pytest.mark.parametrize(
    ("check", "changes"),
    [
        ("pairs_url_well_formed", {"url": "ftp://example.org/b.png"}),
        ("pairs_url_well_formed", {"url": "/relative/b.png"}),
        ("pairs_url_well_formed", {"url": "https://example.org/a b.png"}),
        ("pairs_url_well_formed", {"url": "https:///nohost.png"}),
        ("pairs_host_length", {"url": "https://" + "h" * 61 + ".com/b.png"}),
        ("pairs_caption_length", {"text": "abcd"}),
        ("pairs_caption_length", {"text": "x" * 2001}),
        ("pairs_caption_length", {"text": " padded caption"}),
        ("pairs_caption_length", {"text": "line one\nline two"}),
        ("pairs_unique_url_text", {"url": GOOD_ROW["url"], "text": GOOD_ROW["text"]}),
        ("pairs_key_unique", {"key": "000000000"}),
        ("pairs_provenance_not_null", {"warc_date": None}),
        ("pairs_provenance_not_null", {"warc_path": ""}),
        ("pairs_provenance_not_null", {"warc_offset": -1}),
    ],
)
def test_each_check_fails_on_broken_rows(tmp_path, check, changes):
    out = _outcomes(_write(tmp_path, _rows(**changes)))
    assert not out[check].passed and out[check].failing_rows >= 1
    others = [n for n, o in out.items() if not o.passed and n != check]
    assert others == [] or check == "pairs_provenance_not_null" or set(others) <= {"pairs_url_well_formed"}


def test_bad_record_ratio_check_uses_its_threshold(tmp_path):
    views = _write(tmp_path, _rows(), stats={"records_read": 100, "bad_records": 6, "bad_record_ratio": 0.06}, errors=6)
    assert not _outcomes(views)["bad_record_ratio_under_threshold"].passed
    assert _outcomes(views, {"max_bad_record_ratio": 0.1})["bad_record_ratio_under_threshold"].passed


def test_errors_match_stats_check(tmp_path):
    views = _write(tmp_path, _rows(), errors=3)
    assert not _outcomes(views)["errors_match_stats"].passed
