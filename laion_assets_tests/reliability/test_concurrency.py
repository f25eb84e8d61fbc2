"""Concurrency: a backfill of many shards, several runs at once in separate processes writing one
root and one instance, then a release: DuckDB's published rows equal the shards' rows minus the
duplicates, and equal the pairs the sample says a correct pipeline publishes. Nothing lost.

    pytest -m crash laion_assets_tests/reliability/test_concurrency.py   # LAION_BACKFILL_SHARDS, _CONCURRENCY

(The default run's smoke is test_sample_server.py's two shard processes in parallel.)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.reliability.harness import Lab, visible_problems


@pytest.mark.crash
@pytest.mark.timeout(3600)  # a campaign: minutes, not the default 600 s cap
def test_backfill_with_concurrent_runs_then_release(embedded_env, tmp_path: Path, monkeypatch):
    shards = int(os.environ.get("LAION_BACKFILL_SHARDS", "8"))
    concurrency = int(os.environ.get("LAION_BACKFILL_CONCURRENCY", "3"))
    monkeypatch.setenv("LAION_FILES_PER_SHARD", "1")
    root = Path(embedded_env["LAION_ASSETS_ROOT"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    defs = build_definitions(load_settings())
    started = time.monotonic()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        crawl = defs.resolve_job_def("crawl_job").execute_in_process(instance=instance, run_config={
            "ops": {"sample_crawl": {"config": {"pages": 4 * shards, "warc_files": shards}}}})
        assert crawl.success
        keys = sorted(instance.get_dynamic_partitions("shards"))
        assert len(keys) == shards
        lab = Lab(root, home, instance)

        pending, running, peak = list(keys), {}, 0
        while pending or running:
            while pending and len(running) < concurrency:
                key, tag = pending.pop(0), uuid.uuid4().hex
                running[key] = (lab.start_worker("shard_job", key, tag), tag)
            peak = max(peak, len(running))
            for key, (proc, tag) in list(running.items()):
                if proc.poll() is not None:
                    assert proc.returncode == 0, lab.worker_log(tag)[-3000:]
                    del running[key]
            time.sleep(0.2)
        backfill_s = time.monotonic() - started

        publish = defs.resolve_job_def("publish_job").execute_in_process(instance=instance)
        assert publish.success
        release = publish.asset_materializations_for_node("published_dataset")[-1].metadata

    st = LocalStorage(root)
    filtered_rows, pairs_seen = 0, set()
    for key in keys:
        p = ShardPaths.from_partition_key(key)
        pairs = st.read_parquet(p.pairs)
        status = st.read_parquet(p.downloads)
        assert status.num_rows == pairs.num_rows, f"{key}: a status row per pair"
        filtered = st.read_parquet(p.filtered)
        filtered_rows += filtered.num_rows
        pairs_seen.update(zip(filtered.column("url").to_pylist(), filtered.column("text").to_pylist()))
    duplicates = filtered_rows - len(pairs_seen)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        published = con.execute("SELECT count(*), count(DISTINCT (url, text)) FROM published_pairs").fetchone()
    assert published[0] == published[1] == filtered_rows - duplicates == release["rows"].value
    sample = LocalStorage(root).local_dir("sample-crawl")
    expected = {tuple(x) for x in json.loads((sample / "expected.json").read_text())}
    release_dir = Path(release["path"].value)
    got = [(r["URL"], r["TEXT"]) for part in sorted(release_dir.glob("part-*.parquet"))
           for r in pq.read_table(part, columns=["URL", "TEXT"]).to_pylist()]
    assert sorted(got) == sorted(expected)
    assert visible_problems(root) == []
    print(f"backfill: shards={shards} concurrency={concurrency} peak_running={peak} "
          f"backfill_s={backfill_s:.1f} filtered_rows={filtered_rows} duplicates={duplicates} "
          f"published={published[0]} expected={len(expected)}")
