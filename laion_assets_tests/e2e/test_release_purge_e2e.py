"""From a re-derive to the builder holding nothing of the removed rows: after `publish_job` applies a
removal request, `purge_released_removals` (dbt's drop_log rows `removal:%`) deletes their images,
embeddings and score rows, and `python -m laion_assets.takedown sweep` the matching image the release never held; a later `dbt build` and release pass every check with the same rows, the
shard stages re-run clean, and a second purge does nothing."""

import hashlib
import tarfile
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.purge import purge_released_removals
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.runner import _run, failed_checks
from laion_assets.settings import load_settings
from laion_assets.takedown import main as takedown_main

pytestmark = pytest.mark.e2e


def _removal_drops(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.sql("SELECT crawl, shard, key, reason, stage FROM drop_log WHERE reason LIKE 'removal:%' "
                       "ORDER BY ALL").fetchall()


def _stems(st: LocalStorage, paths: ShardPaths) -> set[str]:
    out = set()
    for tar in st.local_dir(paths.images_dir).glob("*.tar"):
        with tarfile.open(tar) as t:
            out |= {m.name.split(".", 1)[0] for m in t}
    return out


def test_purge_after_rederive_leaves_no_removed_image_and_the_next_build_passes(published_sample, capsys):
    root, first = published_sample.root, published_sample.first
    defs = build_definitions(load_settings())
    st = LocalStorage(root)
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        rows = pq.read_table(sorted(first.release_dir.glob("part-*.parquet"))).to_pylist()
        by_url, by_image = sorted(rows, key=lambda r: r["SAMPLE_ID"])[:2]
        # ... and an image the release never held (below its threshold), whose hash no other row has
        status = {(p.parent.parent.name, p.stem): pq.read_table(p).to_pylist()
                  for p in root.glob("*/images/*.parquet")}
        counts_by_hash: dict[str, int] = {}
        for rows_ in status.values():
            for r in rows_:
                if r["sha256"]:
                    counts_by_hash[r["sha256"]] = counts_by_hash.get(r["sha256"], 0) + 1
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            below = con.sql("SELECT crawl, shard, key FROM drop_log WHERE reason = 'below_threshold' ORDER BY ALL").fetchall()
        hidden = next((c, s_, k, r["sha256"]) for c, s_, k in below for r in status[(c, s_)]
                      if r["key"] == k and r["status"] == "ok" and counts_by_hash[r["sha256"]] == 1)
        requests = root / "removal" / "requests"
        requests.mkdir(parents=True)
        (requests / "photographer.url_sha256.txt").write_text(hashlib.sha256(by_url["URL"].encode()).hexdigest() + "\n")
        (requests / "hashlist.csv").write_text(f"kind,value\nimage_sha256,{by_image['sha256']}\nimage_sha256,{hidden[3]}\n")
        rederive = _run(defs, "publish_job", instance, "WARNING")
        assert failed_checks(instance, [rederive.run_id]) == []
        version = rederive.asset_materializations_for_node("published_dataset")[-1].metadata["version"].value
        removed = _removal_drops(root)
        assert len(removed) >= 2 and {r[4] for r in removed} == {"release"}

        # publish_job purged them already (published_dataset's metadata says what); again: nothing left
        counts = rederive.asset_materializations_for_node("published_dataset")[-1].metadata["purged_shards"].value
        assert all(set(c.values()) == {0} for c in purge_released_removals(st).values())
        assert sum(c["samples_removed"] for c in counts.values()) == len(removed)
        assert sum(c["score_rows_removed"] for c in counts.values()) == len(removed)
        for crawl, shard, key, reason, _ in removed:
            paths = ShardPaths(crawl, shard)
            assert f"{shard}_{key}" not in _stems(st, paths)
            status = {r["key"]: r for r in st.read_parquet(paths.downloads).to_pylist()}[key]
            assert (status["status"], status["reason"], status["error"]) == ("skipped", "removed", reason)
            assert key not in st.read_parquet(paths.scores)["key"].to_pylist()

        # The sweep over every stored image purges the one the release never held, and only it.
        hidden_paths = ShardPaths(hidden[0], hidden[1])
        assert f"{hidden[1]}_{hidden[2]}" in _stems(st, hidden_paths)
        assert takedown_main(["sweep", "--root", str(root)]) == 0  # the operator's command
        assert "1 samples removed" in capsys.readouterr().out.splitlines()[-1]
        assert f"{hidden[1]}_{hidden[2]}" not in _stems(st, hidden_paths)
        drops = {r["key"]: r["reason"] for r in st.read_parquet(hidden_paths.drops).to_pylist()}
        assert drops[hidden[2]] == "removal:hashlist.csv"
        removed = sorted([*removed, (hidden[0], hidden[1], hidden[2], "removal:hashlist.csv", "shard")])

        # The next build: every dbt test and release check passes, the same rows are published (same
        # version), and the removed rows are now the shards' own drops, with the same reasons.
        again = _run(defs, "publish_job", instance, "WARNING")
        assert failed_checks(instance, [again.run_id]) == []
        assert again.asset_materializations_for_node("published_dataset")[-1].metadata["version"].value == version
        assert [r[:4] for r in _removal_drops(root)] == [r[:4] for r in removed]
        assert {r[4] for r in _removal_drops(root)} == {"shard"}

        # The purged shards' stages re-run clean (the sample's image server up, nothing refetched).
        for crawl, shard in sorted({(r[0], r[1]) for r in removed}):
            run = defs.resolve_job_def("shard_job").execute_in_process(
                instance=instance, partition_key=f"{crawl}/{shard}", raise_on_error=False,
                op_selection=["image_downloads", "clip_scores", "filtered_pairs"])
            assert run.success and failed_checks(instance, [run.run_id]) == []
        for crawl, shard, key, reason, _ in removed:
            drops = {r["key"]: r["reason"] for r in st.read_parquet(ShardPaths(crawl, shard).drops).to_pylist()}
            assert drops[key] == reason
        assert all(set(c.values()) == {0} for c in purge_released_removals(st).values())
