"""A hand-added key that names no shard fails at once (no step retry, no run retry) with a message
that says to delete it; `python -m laion_assets.ops` deletes keys, lists given-up shards, lets a
shard retry, and summarizes a crawl's progress, on a real instance after a real shard run."""

import time
from pathlib import Path

import dagster as dg

from laion_assets import ops
from laion_assets.core.crawl.progress import format_summary
from laion_assets.defs.automation.progress import crawl_progress
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.e2e.test_dagster_dev import write_sample_shard


def _step_failures(result, step):
    return [e for e in result.all_events if e.is_step_failure and e.step_key == step]


def test_a_key_not_in_the_manifest_fails_once_and_is_deleted_with_the_cli(embedded_env, capsys):
    keys = write_sample_shard(Path(embedded_env["LAION_ASSETS_ROOT"]), int(embedded_env["LAION_SAMPLE_IMAGE_PORT"]))
    crawl = keys[0].split("/")[0]
    typo, other = f"{crawl}/99999", "CC-MAIN-2099-01/00000"
    defs = build_definitions(load_settings())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [*keys, typo, other])  # as "Add a partition" would
        started = time.monotonic()
        for key, why in ((typo, "none is '99999'"), (other, "has no manifest")):
            result = defs.resolve_job_def("shard_job").execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False)
            (failure,) = _step_failures(result, "image_text_pairs")  # one attempt: no retry
            message = failure.event_specific_data.error.cause.message if failure.event_specific_data.error.cause else failure.event_specific_data.error.message
            assert why in message and f"ops partitions delete {key}" in message
            assert "re-materialize crawl_manifest" not in message
            assert instance.get_run_by_id(result.run_id).tags["dagster/retry_on_asset_or_op_failure"] == "false"
        assert time.monotonic() - started < 25  # the retry policy's 30 s backoff never ran

        assert ops.main(["partitions", "delete", typo, other, "CC-MAIN-2099-01/00001"], instance=instance) == 0
        out = capsys.readouterr().out
        assert f"deleted {typo}" in out and f"deleted {other}" in out and "not registered: CC-MAIN-2099-01/00001" in out
        assert sorted(instance.get_dynamic_partitions("shards")) == sorted(keys)

        ok = defs.resolve_job_def("shard_job").execute_in_process(instance=instance, partition_key=keys[0])
        assert ok.success
        (progress,) = crawl_progress(instance)
        row = progress.as_row(time.time())
        assert row["registered"] == len(keys) and row["done_filtered_pairs"] == 1 and row["done_image_text_pairs"] == 1
        assert row["pairs"] > 0 and 0 < row["download_success_rate"] <= 1 and row["eta_h"] is not None
        assert ops.main(["progress"], instance=instance) == 0
        summary = capsys.readouterr().out
        assert f"{crawl}: 1/{len(keys)} shards done" in summary and "time left" in summary
        assert ops.main(["shards", "given-up"], instance=instance) == 0
        assert "no shard is given up" in capsys.readouterr().out
