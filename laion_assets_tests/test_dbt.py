"""Real `dbt build` against DuckDB over shard parquet: cross-shard dedup and the dbt tests."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.defs.dbt.project import DBT_DIR, dbt_cli


def _filtered(rows):
    base = {"page_url": "http://p.example/", "warc_path": "/w/a.warc.gz", "license": None, "language": "en",
            "width": 256, "height": 256, "sha256": "ab", "fetched_at": None, "threshold": 0.28,
            "model_id": "m", "punsafe": 0.1, "nsfw": "UNLIKELY"}
    return pa.Table.from_pylist([{**base, **r} for r in rows])


def _write_shards(root: Path, crawl: str, shards: dict[str, list[dict]]) -> None:
    (root / crawl / "filtered").mkdir(parents=True, exist_ok=True)
    for shard, rows in shards.items():
        pq.write_table(_filtered([{**r, "crawl": crawl, "shard": shard} for r in rows]),
                       root / crawl / "filtered" / f"{shard}.parquet")


def _build(root: Path, tmp_path: Path, monkeypatch) -> bool:
    monkeypatch.setenv("LAION_ASSETS_ROOT", str(root))
    dbt = dbt_cli()
    invocation = dbt.cli(["build"], target_path=tmp_path / "target", raise_on_error=False)
    invocation.wait()
    return invocation.is_successful()


def test_dbt_build_dedups_across_shards(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    row = lambda k, url, text, sim, off: {"key": k, "url": url, "text": text, "similarity": sim, "warc_offset": off}  # noqa: E731
    _write_shards(root, "C1", {
        "00000": [row("000000000", "http://i/1.jpg", "a red circle", 0.5, 10),
                  row("000000001", "http://i/2.jpg", "a blue star", 0.4, 20)],
        "00001": [row("000000000", "http://i/1.jpg", "a red circle", 0.6, 30),  # same pair, higher score
                  row("000000001", "http://i/1.jpg", "another caption", 0.4, 40)],
    })
    assert _build(root, tmp_path, monkeypatch)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        published = con.sql("SELECT url, text, shard, similarity FROM published_pairs ORDER BY url, text").fetchall()
        stats = con.sql("SELECT crawl, pairs_in, unique_pairs, duplicates_removed_within_crawl, pairs_published "
                        "FROM dedup_stats").fetchall()
    assert [(u, t, s) for u, t, s, _ in published] == [
        ("http://i/1.jpg", "a red circle", "00001"),  # the higher-similarity copy won
        ("http://i/1.jpg", "another caption", "00001"),
        ("http://i/2.jpg", "a blue star", "00000"),
    ]
    assert stats == [("C1", 4, 3, 1, 3)]


def test_dbt_tests_fail_on_bad_similarity(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    _write_shards(root, "C1", {"00000": [{"key": "000000000", "url": "http://i/1.jpg", "text": "a red circle",
                                          "similarity": 1.7, "warc_offset": 1}]})
    assert not _build(root, tmp_path, monkeypatch)


def test_dbt_project_is_where_definitions_look():
    assert (DBT_DIR / "dbt_project.yml").exists()
    if not (DBT_DIR / "target" / "manifest.json").exists():
        pytest.fail("dbt_project() should have parsed the project")
