import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.filter import CHECKS as FILTER_CHECKS
from laion_assets.core.filter import FilterConfig, filter_shard
from laion_assets.core.quality import run_checks
from laion_assets.core.release import CHECKS as RELEASE_CHECKS
from laion_assets.core.release import release_version, sample_id, to_release_table, write_release
from laion_assets.core.schemas import DOWNLOAD_SCHEMA, PAIR_SCHEMA, SCORE_SCHEMA


def _pair(key, url, text, optout=False, lang="en"):
    return {"key": key, "url": url, "text": text, "page_url": "http://p.example/", "crawl": "C",
            "warc_path": "/w/a.warc.gz", "warc_offset": int(key) * 100, "caption_language": lang,
            "optout_page": optout}


def _shard(tmp_path: Path):
    pairs = [
        _pair("000000000", "http://i.example/1.jpg", "a red circle"),  # kept
        _pair("000000001", "http://i.example/2.jpg", "a blue star"),  # below threshold
        _pair("000000002", "http://i.example/3.jpg", "a green cross"),  # download failed
        _pair("000000003", "http://i.example/4.jpg", "a black ring", optout=True),  # page opt-out
        _pair("000000004", "http://i.example/5.jpg", "un carré jaune", lang="fr"),  # 0.27 >= 0.26
        _pair("000000005", "http://i.example/6.jpg", "a white square"),  # not scored
    ]
    ok = lambda k: {"key": k, "url": "u", "status": "ok", "width": 300, "height": 200, "sha256": "ab" * 32}  # noqa: E731
    downloads = [ok("000000000"), ok("000000001"),
                 {"key": "000000002", "url": "u", "status": "failed", "reason": "http_error"},
                 ok("000000003"), ok("000000004"), ok("000000005")]
    sc = lambda k, s, t=0.28: {"key": k, "status": "scored", "similarity": s, "threshold": t, "model_id": "m"}  # noqa: E731
    scores = [sc("000000000", 0.61), sc("000000001", 0.05), sc("000000003", 0.7),
              sc("000000004", 0.27, 0.26),
              {"key": "000000005", "status": "failed", "reason": "decode_error", "model_id": "m"}]
    paths = {}
    for name, rows, schema in [("pairs", pairs, PAIR_SCHEMA), ("downloads", downloads, DOWNLOAD_SCHEMA),
                               ("scores", scores, SCORE_SCHEMA)]:
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), paths[name])
    return paths


def test_filter_keeps_only_publishable_pairs_and_counts_every_drop(tmp_path: Path):
    p = _shard(tmp_path)
    result = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000")
    assert result.table.column("key").to_pylist() == ["000000000", "000000004"]
    assert result.stats == {
        "pairs_in": 6, "pairs_kept": 2, "dropped_below_threshold": 1, "dropped_download_failed": 1,
        "dropped_page_optout": 1, "dropped_score_failed": 1,
    }
    assert sum(v for k, v in result.stats.items() if k.startswith("dropped_")) + 2 == 6
    strict = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000",
                          config=FilterConfig(min_similarity=0.5))
    assert strict.table.column("key").to_pylist() == ["000000000"]
    out = tmp_path / "filtered.parquet"
    pq.write_table(result.table, out)
    assert all(o.passed for o in run_checks({"filtered": out}, FILTER_CHECKS))


def test_filter_checks_catch_bad_rows():
    bad = pa.table({"key": ["k"], "similarity": pa.array([0.1], pa.float32()),
                    "threshold": pa.array([0.28], pa.float32()), "width": pa.array([None], pa.int32()),
                    "height": [1], "sha256": ["x"]})
    outcomes = {o.name: o.passed for o in run_checks({"filtered": bad}, FILTER_CHECKS)}
    assert outcomes == {"filtered_over_threshold": False, "filtered_downloaded": False}


def _published(rows):
    cols = ["url", "text", "height", "width", "license", "nsfw", "punsafe", "similarity", "language",
            "sha256", "crawl", "shard", "warc_path", "warc_offset", "page_url", "fetched_at", "model_id"]
    return pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows])


def test_release_is_content_addressed_and_checked(tmp_path: Path):
    rows = [
        {"url": f"http://i.example/{i}.jpg", "text": f"caption {i}", "similarity": 0.3 + i / 100,
         "crawl": "C", "shard": "00000", "warc_path": "/w", "warc_offset": i, "page_url": "http://p/",
         "width": 10, "height": 20, "model_id": "m", "language": "en"}
        for i in range(5)
    ]
    table = to_release_table(_published(rows))
    assert table.column("SAMPLE_ID").to_pylist() == sorted(sample_id(r["url"], r["text"]) for r in rows)
    assert release_version(table) == release_version(to_release_table(_published(rows[::-1])))
    assert release_version(table) != release_version(to_release_table(_published(rows[:4])))
    rescored = [dict(r, similarity=r["similarity"] + 0.01) for r in rows]
    assert release_version(table) != release_version(to_release_table(_published(rescored)))
    assert all(o.passed for o in run_checks({"release": table}, RELEASE_CHECKS))

    info = write_release(table, tmp_path / "r", version=release_version(table), provenance={"model_id": "m"},
                         rows_per_part=2)
    assert info.parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["rows"] == 5 and sum(f["rows"] for f in manifest["files"]) == 5
    assert "rows: **5**" in (tmp_path / "r" / "README.md").read_text()
    assert pq.read_table(tmp_path / "r" / "part-00001.parquet").num_rows == 2

    dup = to_release_table(_published(rows + [dict(rows[0], similarity=1.5, URL=None)]))
    failing = {o.name for o in run_checks({"release": dup}, RELEASE_CHECKS) if not o.passed}
    assert failing == {"release_unique_pairs", "release_similarity_valid"}
    bad_url = to_release_table(_published([dict(rows[0], url="ftp://x/1.jpg", warc_path=None)]))
    failing = {o.name for o in run_checks({"release": bad_url}, RELEASE_CHECKS) if not o.passed}
    assert failing == {"release_urls_http", "release_provenance"}
