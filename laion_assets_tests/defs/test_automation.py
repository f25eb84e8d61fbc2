"""The backfill schedule and the publish automation condition, evaluated against a real instance."""

import uuid

import dagster as dg
import pytest

from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.core.lib.validation import ConfigError
from laion_assets.definitions import build_definitions
from laion_assets.defs.filter.assets import filtered_pairs_checks
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.automation.schedules import BACKFILL_TAG, BackfillSettings, build_shard_backfill_schedule
from laion_assets.settings import load_settings

OLD, NEW = "CC-MAIN-2024-10", "CC-MAIN-2024-22"


class ShardDone(dg.Config):
    checks_pass: bool = True


@dg.asset(name="filtered_pairs", partitions_def=shard_partitions,
          check_specs=filtered_pairs_checks.specs)  # the real stage's specs: partitioned per shard
def shard_done(config: ShardDone) -> dg.MaterializeResult:
    """Stands in for a shard run's last stage: its materialization and check records are what matter."""
    return dg.MaterializeResult(check_results=[
        dg.AssetCheckResult(check_name=c.name, passed=config.checks_pass or not c.blocking,
                            severity=dg.AssetCheckSeverity.ERROR if c.blocking else dg.AssetCheckSeverity.WARN)
        for c in FILTER_CHECKS
    ])


def _materialized(instance, asset: str, partition: str, checks_pass: bool = True):
    assert asset == "filtered_pairs"
    dg.materialize([shard_done], instance=instance, partition_key=partition, raise_on_error=False,
                   run_config={"ops": {"filtered_pairs": {"config": {"checks_pass": checks_pass}}}})


def _in_flight(instance, key: str, status=dg.DagsterRunStatus.STARTED):
    instance.add_run(dg.DagsterRun(job_name="shard_job", run_id=str(uuid.uuid4()), status=status,
                                   tags={"dagster/partition": key}))


def _plan_why(instance, settings) -> str:
    from laion_assets.defs.automation.schedules import plan_backfill

    return plan_backfill(instance, settings)[1]


def _evaluate(instance, settings):
    schedule = build_shard_backfill_schedule(settings)
    repo = build_definitions(load_settings()).get_repository_def()
    with dg.build_schedule_context(instance=instance, repository_def=repo) as context:
        return schedule.evaluate_tick(context)


def test_schedule_launches_every_crawls_missing_shards_oldest_first_within_the_run_bound(embedded_env):
    with dg.instance_for_test() as instance:
        assert "crawl_manifest" in (_evaluate(instance, BackfillSettings()).skip_message or "")
        instance.add_dynamic_partitions("shards", [f"{OLD}/{i:05d}" for i in range(3)])
        instance.add_dynamic_partitions("shards", [f"{NEW}/{i:05d}" for i in range(10)])
        _materialized(instance, "filtered_pairs", f"{NEW}/00000")
        _materialized(instance, "filtered_pairs", f"{NEW}/00001")
        _in_flight(instance, f"{NEW}/00002")
        _in_flight(instance, f"{NEW}/00003", dg.DagsterRunStatus.NOT_STARTED)
        _in_flight(instance, f"{OLD}/00000")  # in flight from someone else's backfill: counts too
        for _ in range(2):  # a shard that failed twice is left for a person
            _in_flight(instance, f"{NEW}/00004", dg.DagsterRunStatus.FAILURE)

        result = _evaluate(instance, BackfillSettings(max_concurrent_runs=6, max_failed_runs_per_shard=2))
        keys = [r.partition_key for r in result.run_requests]
        # 6 - 3 in flight; the older crawl's missing shards first (they block publish too)
        assert keys == [f"{OLD}/00001", f"{OLD}/00002", f"{NEW}/00005"]
        assert [r.tags[BACKFILL_TAG] for r in result.run_requests] == [OLD, OLD, NEW]
        schedule_why = _plan_why(instance, BackfillSettings(max_concurrent_runs=6, max_failed_runs_per_shard=2))
        assert f"{OLD}: 2 pending" in schedule_why and f"{NEW}: 6 pending" in schedule_why
        assert f"left after 2 failed runs: {NEW}/00004" in schedule_why

        for key in keys:
            _in_flight(instance, key)
        full = _evaluate(instance, BackfillSettings(max_concurrent_runs=6, max_failed_runs_per_shard=2))
        assert not full.run_requests and "limit 6" in full.skip_message


def test_backfill_settings_are_validated():
    with pytest.raises(ConfigError, match="LAION_BACKFILL_MAX_RUNS"):
        BackfillSettings(max_concurrent_runs=0)
    with pytest.raises(ConfigError, match="LAION_BACKFILL_MAX_RUNS"):
        BackfillSettings.from_env({"LAION_BACKFILL_MAX_RUNS": "eight"})
    assert BackfillSettings.from_env({"LAION_BACKFILL_MAX_RUNS": "32"}).max_concurrent_runs == 32


def test_publish_follows_when_every_shard_is_materialized(embedded_env):
    defs = build_definitions(load_settings())
    publish = dg.AssetSelection.groups("publish")
    with dg.instance_for_test() as instance:
        keys = [f"{NEW}/{i:05d}" for i in range(3)]
        instance.add_dynamic_partitions("shards", keys)
        for key in keys[:2]:
            _materialized(instance, "filtered_pairs", key)
        waiting = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish)
        assert waiting.total_requested == 0  # one shard still missing

        _materialized(instance, "filtered_pairs", keys[2], checks_pass=False)
        blocked = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                    cursor=waiting.cursor)
        assert blocked.total_requested == 0  # every shard there, but a blocking check failed

        _materialized(instance, "filtered_pairs", keys[2])
        ready = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                  cursor=blocked.cursor)
        assert ready.get_num_requested(dg.AssetKey("stg_filtered_pairs")) == 1
