"""Real `dbt build` against DuckDB over shard parquet: removal anti-join (every kind, PDQ near
duplicates included), placeholder images, cross-crawl dedup of pairs and images, the drop log."""

import hashlib
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pdqhash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.lib.ids import sample_id
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, pdq_hex
from laion_assets.core.schemas.filtered import DROP_LOG_SCHEMA, FILTERED_SCHEMA
from laion_assets.core.sample.synthetic import render_image
from laion_assets.defs.dbt.project import DBT_DIR, dbt_cli, vars_args


def _filtered(rows):
    base = {"page_url": "http://p.example/", "warc_path": "/home/me/crawl/a.warc.gz", "license": None,
            "language": "en", "width": 256, "height": 256, "fetched_at": None, "threshold": 0.28,
            "model_id": "m", "weights_id": "w", "punsafe": 0.1, "punsafe_source": "zero_shot:m", "nsfw": "UNLIKELY"}
    out = []
    for r in rows:
        row = {**base, **r}
        row.setdefault("sha256", hashlib.sha256(f"{row['url']}|{row['text']}".encode()).hexdigest())
        row.setdefault("sample_id", sample_id(row["url"], row["text"]))
        out.append(row)
    return pa.Table.from_pylist(out, schema=FILTERED_SCHEMA)


def _write(root: Path, crawl: str, shards: dict[str, list[dict]], drops=(), entries=()) -> None:
    for sub in ("filtered", "drops", "images"):
        (root / crawl / sub).mkdir(parents=True, exist_ok=True)
    for shard, rows in shards.items():
        pq.write_table(_filtered([{**r, "crawl": crawl, "shard": shard} for r in rows]),
                       root / crawl / "filtered" / f"{shard}.parquet")
        pq.write_table(pa.Table.from_pylist([{**d, "sample_id": sample_id(d["url"], d["text"])}
                                             for d in drops if d["shard"] == shard], schema=DROP_LOG_SCHEMA),
                       root / crawl / "drops" / f"{shard}.parquet")
        kept = _filtered(rows)
        pq.write_table(pa.table({"key": kept.column("key"), "url": kept.column("url"),
                                 "status": pa.array(["ok"] * kept.num_rows), "sha256": kept.column("sha256")}),
                       root / crawl / "images" / f"{shard}.parquet")
    (root / "removal").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(entries), schema=REMOVAL_SCHEMA), root / "removal" / "entries.parquet")


def _build(root: Path, tmp_path: Path, monkeypatch, *select: str) -> bool:
    monkeypatch.setenv("LAION_ASSETS_ROOT", str(root))
    monkeypatch.setenv("LAION_WAREHOUSE_PATH", str(root / "warehouse.duckdb"))  # another test's may linger
    args = ["build", *vars_args(str(root)), *(["--select", *select, "--indirect-selection", "cautious"] if select else [])]
    invocation = dbt_cli().cli(args, target_path=tmp_path / "target", raise_on_error=False)
    invocation.wait()
    return invocation.is_successful()


def _row(k, url, text, sim, off, **kw):
    return {"key": k, "url": url, "text": text, "similarity": sim, "warc_offset": off, **kw}


def _jpeg(img: Image.Image, **kw) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _pdq(img: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.asarray(img))
    return pdq_hex(bits), int(quality)


def test_dbt_build_dedups_across_shards_and_crawls(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    same_image = "ab" * 32
    _write(root, "C1", {
        "00000": [_row("000000000", "http://i/1.jpg", "a red circle", 0.5, 10),
                  _row("000000001", "http://i/2.jpg", "a blue star", 0.4, 20)],
        "00001": [_row("000000000", "http://i/1.jpg", "a red circle", 0.6, 30),  # same pair, higher score
                  _row("000000001", "http://i/1.jpg", "another caption", 0.4, 40)],
    }, drops=[{"crawl": "C1", "shard": "00000", "key": "000000002", "url": "http://i/9.jpg", "text": "t",
               "reason": "below_threshold"}])
    _write(root, "C2", {"00000": [_row("000000000", "http://mirror/a.jpg", "cat", 0.5, 1, sha256=same_image),
                                  _row("000000001", "http://other/b.jpg", "a cat", 0.7, 2, sha256=same_image)]})
    assert _build(root, tmp_path, monkeypatch)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        published = con.sql("SELECT url, text, shard, crawl_warc_path, sample_id FROM published_pairs ORDER BY url, text").fetchall()
        reasons = dict(con.sql("SELECT reason, count(*) FROM drop_log GROUP BY 1").fetchall())
        stats = con.sql("SELECT crawl, pairs_in, duplicates_removed, duplicate_images_removed, pairs_published "
                        "FROM dedup_stats ORDER BY crawl").fetchall()
        urls_in_log = con.sql("SELECT count(*) FROM information_schema.columns WHERE table_name='drop_log' AND column_name='url'").fetchall()
    assert [(u, t, s) for u, t, s, _, _ in published] == [
        ("http://i/1.jpg", "a red circle", "00001"),  # the higher-similarity copy won
        ("http://i/1.jpg", "another caption", "00001"),
        ("http://i/2.jpg", "a blue star", "00000"),
        ("http://other/b.jpg", "a cat", "00000"),  # same image bytes: the better-scored row stays
    ]
    assert all(p[3] in ("C1/a.warc.gz", "C2/a.warc.gz") for p in published)  # never the local path
    assert all(p[4] == sample_id(p[0], p[1]) for p in published)  # SQL twin of ids.sample_id
    assert reasons == {"below_threshold": 1, "duplicate": 1, "duplicate_image": 1}
    assert stats == [("C1", 4, 1, 0, 3), ("C2", 2, 0, 1, 1)]
    assert urls_in_log == [(0,)]


def test_dbt_removal_anti_join_every_kind_pdq_near_duplicates_and_placeholders(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    original = render_image("blue", "star", seed=11)
    resized = _jpeg(original.resize((180, 180)), quality=70)  # a re-encoded, resized copy
    unrelated = render_image("green", "cross", seed=12)
    (pdq_orig, _), (pdq_copy, q_copy), (pdq_other, q_other) = _pdq(original), _pdq(resized), _pdq(unrelated)
    rows = [
        _row("000000000", "http://a.example/keep.jpg", "kept", 0.5, 1),
        _row("000000001", "http://a.example/by-md5.jpg", "x", 0.5, 2),
        _row("000000002", "http://a.example/by-sha1.jpg", "x", 0.5, 3),
        _row("000000003", "http://a.example/by-sha256.jpg", "x", 0.5, 4),
        _row("000000004", "http://a.example/img.jpg", "x", 0.5, 5, md5="ee" * 16),
        _row("000000005", "http://a.example/by-url.jpg", "x", 0.5, 6),
        _row("000000006", "http://cdn.blocked.example/p.jpg", "x", 0.5, 7),
        _row("000000007", "http://a.example/private/1.jpg", "x", 0.5, 8),
        _row("000000008", "http://a.example/copy.jpg", "x", 0.5, 9, pdq=pdq_copy, pdq_quality=q_copy),
        _row("000000009", "http://a.example/other.jpg", "x", 0.5, 10, pdq=pdq_other, pdq_quality=q_other),
        _row("000000010", "http://a.example/lowq.jpg", "x", 0.5, 11, pdq=pdq_copy, pdq_quality=10),
        _row("000000011", "http://notblocked.example/p.jpg", "x", 0.5, 12),
    ] + [  # a placeholder: one image behind 5 unrelated URLs
        _row(f"{20 + i:09d}", f"http://h{i}.example/missing.jpg", f"caption {i}", 0.5, 20 + i, sha256="cd" * 32)
        for i in range(5)
    ]
    img_sha = _filtered([rows[4]]).column("sha256")[0].as_py()
    entries = [
        {"kind": "url_md5", "value": hashlib.md5(rows[1]["url"].encode()).hexdigest(), "source": "iwf", "listed_on": "2026-01-01"},
        {"kind": "url_sha1", "value": hashlib.sha1(rows[2]["url"].encode()).hexdigest(), "source": "sio", "listed_on": None},
        {"kind": "url_sha256", "value": hashlib.sha256(rows[3]["url"].encode()).hexdigest(), "source": "sio", "listed_on": None},
        {"kind": "image_md5", "value": "ee" * 16, "source": "c3p", "listed_on": None},
        {"kind": "url", "value": rows[5]["url"], "source": "dmca", "listed_on": None},
        {"kind": "domain", "value": "blocked.example", "source": "optout", "listed_on": None},
        {"kind": "url_prefix", "value": "http://a.example/private/", "source": "optout", "listed_on": None},
        {"kind": "pdq", "value": pdq_orig, "source": "photographer", "listed_on": None},
        {"kind": "image_sha256", "value": "00" * 32, "source": "c3p", "listed_on": None},
    ]
    assert img_sha
    _write(root, "C1", {"00000": rows}, entries=entries)
    assert _build(root, tmp_path, monkeypatch)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        kept = [r[0] for r in con.sql("SELECT key FROM published_pairs ORDER BY key").fetchall()]
        why = dict(con.sql("SELECT key, reason FROM drop_log").fetchall())
    assert kept == ["000000000", "000000009", "000000010", "000000011"]
    assert why == {"000000001": "removal:iwf", "000000002": "removal:sio", "000000003": "removal:sio",
                   "000000004": "removal:c3p", "000000005": "removal:dmca", "000000006": "removal:optout",
                   "000000007": "removal:optout", "000000008": "removal:photographer",
                   **{f"{20 + i:09d}": "placeholder_image" for i in range(5)}}


def test_dbt_reads_shards_written_before_sample_id_and_host_columns(tmp_path: Path, monkeypatch):
    """A shard written by an older filter stage (no sample_id, no url_host) next to a new one: the
    staging view derives both, and removal by domain and dedup across the two layouts still hold."""
    root = tmp_path / "root"
    _write(root, "C1", {"00000": [_row("000000000", "http://Sub.Blocked.example/a.jpg", "gone", 0.5, 1),
                                  _row("000000001", "http://ok.example/b.jpg", "a star", 0.4, 2)],
                        "00001": [_row("000000000", "http://ok.example/b.jpg", "a star", 0.6, 3)]},
           entries=[{"kind": "domain", "value": "blocked.example", "source": "optout", "listed_on": None}])
    old = root / "C1" / "filtered" / "00000.parquet"
    pq.write_table(pq.read_table(old).drop_columns(["sample_id", "url_host"]), old)
    assert _build(root, tmp_path, monkeypatch)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        published = con.sql("SELECT url, text, shard, sample_id, url_host FROM published_pairs").fetchall()
        why = dict(con.sql("SELECT shard || '/' || key, reason FROM drop_log").fetchall())
    assert published == [("http://ok.example/b.jpg", "a star", "00001", sample_id("http://ok.example/b.jpg", "a star"),
                          "ok.example")]
    assert why == {"00000/000000000": "removal:optout", "00000/000000001": "duplicate"}


def test_dbt_tests_fail_on_bad_similarity(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    _write(root, "C1", {"00000": [_row("000000000", "http://i/1.jpg", "a red circle", 1.7, 1)]})
    assert not _build(root, tmp_path, monkeypatch, "+published_similarity_in_range")
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    failed = {r["unique_id"].split(".")[2] for r in results if r["status"] in ("fail", "error")}
    assert failed == {"published_similarity_in_range"}  # the rule caught it, nothing else broke


def test_dbt_project_is_where_definitions_look():
    assert (DBT_DIR / "dbt_project.yml").exists()
    if not (DBT_DIR / "target" / "manifest.json").exists():
        pytest.fail("dbt_project() should have parsed the project")
