"""The publish automation's conditions (what the daemon's `publish_automation` evaluates), on a real
SQLite instance holding the published sample: re-running a published shard requests every model
downstream of it, the drop-log models included, and the release; running what was requested
publishes again. The short form of `e2e/test_postgres_daemon.py` (which runs the real daemon).

The cause it pins: the drop logs were a never-materialized `AssetSpec`, so `stg_shard_drops` (and
`drop_log`, `stats_funnel`, `stats_drops_by_reason`) were never requested under the daemon."""

import dagster as dg
import pytest

from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings

PUBLISH = dg.AssetSelection.groups("publish", "removal")
pytestmark = pytest.mark.slow_automation  # > 60 s (a shard run and a publish): not in the default run
DROP_LOG_MODELS = {"stg_shard_drops", "drop_log", "stats_funnel", "stats_drops_by_reason"}


def _requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results
            if isinstance(r.key, dg.AssetKey) and not r.true_subset.is_empty}


def test_a_rerun_shard_requests_the_drop_log_models_and_the_release(published_sample):
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        key = sorted(instance.get_dynamic_partitions("shards"))[0]
        assert instance.get_materialized_partitions(dg.AssetKey("filtered_pairs_drop_log")) == set(
            instance.get_dynamic_partitions("shards"))  # the step's second output, per shard
        idle = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=PUBLISH)
        assert _requested(idle) <= {"removal_list"}  # published: nothing to do

        assert defs.resolve_job_def("shard_job").execute_in_process(instance=instance, partition_key=key).success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=PUBLISH,
                                                 cursor=idle.cursor)
        requested = _requested(tick)
        assert DROP_LOG_MODELS <= requested and {"stg_filtered_pairs", "published_dataset"} <= requested

        before = len(instance.fetch_materializations(dg.AssetKey("published_dataset"), limit=10).records)
        run = defs.resolve_job_def("publish_job").execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey.from_user_string(k) for k in requested])
        assert run.success
        assert len(instance.fetch_materializations(dg.AssetKey("published_dataset"), limit=10).records) == before + 1
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=PUBLISH,
                                                  cursor=tick.cursor)
        assert not _requested(after) - {"removal_list"}  # settled: no request loop
