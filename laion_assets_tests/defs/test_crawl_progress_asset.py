"""`crawl_progress` (the per-crawl report asset) and its schedule on a real instance holding the
published sample's real shard runs, plus a second crawl with a failed and a given-up shard."""

import uuid

import dagster as dg
import pyarrow.parquet as pq

from laion_assets.core.storage.layout import ShardPaths
from laion_assets.definitions import build_definitions
from laion_assets.defs.progress.schedules import crawl_progress_schedule, refresh_reason
from laion_assets.settings import load_settings

OTHER = "CC-MAIN-2024-22"


def _failed_run(instance, key: str) -> None:
    instance.add_run(dg.DagsterRun(job_name="shard_job", run_id=str(uuid.uuid4()),
                                   status=dg.DagsterRunStatus.FAILURE, tags={"dagster/partition": key}))


def _tick(instance, defs):
    with dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def()) as context:
        return crawl_progress_schedule.evaluate_tick(context)


def _report(instance) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey("crawl_progress"))
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_crawl_progress_reports_each_crawl_and_plots_over_refreshes(published_sample):
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        sample_keys = sorted(instance.get_dynamic_partitions("shards"))
        crawl = sample_keys[0].split("/")[0]
        instance.add_dynamic_partitions("shards", [f"{OTHER}/00000", f"{OTHER}/00001"])
        _failed_run(instance, f"{OTHER}/00000")
        for _ in range(3):  # max_failed_runs_per_shard: the schedule gave it up
            _failed_run(instance, f"{OTHER}/00001")

        assert refresh_reason(instance) == "no progress report yet"
        assert _tick(instance, defs).run_requests
        assert defs.resolve_job_def("progress_job").execute_in_process(instance=instance).success
        report = _report(instance)

        # What the shards' files say, read independently of the instance.
        root = published_sample.root
        pairs = sum(pq.read_metadata(root / ShardPaths.from_partition_key(k).pairs).num_rows for k in sample_keys)
        statuses = [s for k in sample_keys
                    for s in pq.read_table(root / ShardPaths.from_partition_key(k).downloads, columns=["status"])
                    .column("status").to_pylist()]
        rows = {r.data["crawl"]: r.data for r in report["crawls"].records}
        assert set(rows) == {crawl, OTHER}
        assert rows[crawl]["registered"] == len(sample_keys) and rows[crawl]["done_filtered_pairs"] == len(sample_keys)
        assert rows[crawl]["pairs"] == pairs and rows[crawl]["failed"] == 0 and rows[crawl]["given_up"] == 0
        assert rows[crawl]["images_ok"] == statuses.count("ok")
        assert (rows[OTHER]["failed"], rows[OTHER]["given_up"], rows[OTHER]["done_filtered_pairs"]) == (1, 1, 0)
        assert report["given_up_shards"] == {OTHER: [f"{OTHER}/00001"]}
        assert report["shards_registered"] == len(sample_keys) + 2 and report["shards_done"] == len(sample_keys)
        assert report["shards_failed"] == 1 and report["shards_given_up"] == 1 and report["pairs"] == pairs
        assert report["download_success_rate"] == round(statuses.count("ok") / len(statuses), 4)
        assert report[f"{crawl}/shards_done"] == len(sample_keys) and report[f"{OTHER}/shards_given_up"] == 1
        assert "eta_h" not in report  # the other crawl has no finished shard: time left unknown
        assert f"{crawl}: {len(sample_keys)}/{len(sample_keys)} shards done" in report["summary"]

        # Idle: nothing changed, the schedule records no run. A shard run changes it.
        assert refresh_reason(instance) is None
        assert not _tick(instance, defs).run_requests
        _failed_run(instance, f"{OTHER}/00000")
        assert "changed since the last report" in refresh_reason(instance)
        assert _tick(instance, defs).run_requests
        assert defs.resolve_job_def("progress_job").execute_in_process(instance=instance).success

        # The Plots tab: one numeric point per refresh.
        records = instance.fetch_materializations(dg.AssetKey("crawl_progress"), limit=10).records
        series = [r.asset_materialization.metadata["shards_given_up"] for r in reversed(records)]
        assert all(isinstance(v, dg.IntMetadataValue) for v in series) and [v.value for v in series] == [1, 1]
        assert _report(instance)["shards_failed"] == 1  # 2 failures now, still under the give-up count
