"""The publish gate's shard conditions (shard_gate.py, check_failures.py) against a real instance."""

import dagster as dg

from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.definitions import build_definitions
from laion_assets.defs.automation.check_failures import failed_shard_checks
from laion_assets.defs.automation.shard_gate import SHARD_ASSETS
from laion_assets.defs.filter.assets import filtered_pairs_checks
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.settings import load_settings

CRAWL = "CC-MAIN-2024-22"
FILTERED = dg.AssetKey("filtered_pairs")
STG = dg.AssetKey("stg_filtered_pairs")


class ShardDone(dg.Config):
    checks_pass: bool = True
    crash: bool = False  # the step fails before its checks: their rows stay PLANNED


@dg.asset(name="filtered_pairs", partitions_def=shard_partitions, check_specs=filtered_pairs_checks.specs)
def shard_done(config: ShardDone) -> dg.MaterializeResult:
    """A shard run's last stage: its materialization and (planned, then evaluated) check rows."""
    if config.crash:
        raise RuntimeError("the step failed before its checks ran")
    return dg.MaterializeResult(check_results=[
        dg.AssetCheckResult(check_name=c.name, passed=config.checks_pass or not c.blocking,
                            severity=dg.AssetCheckSeverity.ERROR if c.blocking else dg.AssetCheckSeverity.WARN)
        for c in FILTER_CHECKS
    ])


def _run(instance, key: str, checks_pass: bool = True, crash: bool = False) -> None:
    dg.materialize([shard_done], instance=instance, partition_key=key, raise_on_error=False,
                   run_config={"ops": {"filtered_pairs": {"config": {"checks_pass": checks_pass, "crash": crash}}}})


def _blocking_keys():
    return [dg.AssetCheckKey(FILTERED, c.name) for c in FILTER_CHECKS if c.blocking]


def _dagster_answer(instance) -> dict:
    """Dagster's own reading: newest execution FAILED and targeting the newest materialization."""
    out = {k: set() for k in _blocking_keys()}
    for info in instance.event_log_storage.get_asset_check_partition_info(_blocking_keys()):
        if info.latest_execution_status.value == "FAILED" and info.is_current:
            out[info.check_key].add(info.partition_key)
    return out


def test_failed_shard_checks_follow_new_rows_like_dagsters_full_read(embedded_env):
    keys = [f"{CRAWL}/{i:05d}" for i in range(4)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", keys)
        _run(instance, keys[0])
        _run(instance, keys[1], checks_pass=False)
        first = failed_shard_checks(instance, _blocking_keys())  # the first read: everything
        assert first == _dagster_answer(instance)
        assert all(v == {keys[1]} for v in first.values()) and len(first) >= 1

        _run(instance, keys[1])  # fixed and re-run: its rows are new, the old failure is superseded
        _run(instance, keys[2], checks_pass=False)
        second = failed_shard_checks(instance, _blocking_keys())
        assert second == _dagster_answer(instance)
        assert all(v == {keys[2]} for v in second.values())

        # a newer materialization without a check evaluation: the failure is no longer current
        instance.report_runless_asset_event(dg.AssetMaterialization(FILTERED, partition=keys[2]))
        third = failed_shard_checks(instance, _blocking_keys())
        assert third == _dagster_answer(instance)
        assert all(v == set() for v in third.values())


def test_a_stale_planned_row_does_not_hide_a_newer_failure(embedded_env):
    """A run that failed before its checks leaves PLANNED rows that are re-read every tick; a newer
    FAILED execution of the same check and shard must win on every later tick, not only the first."""
    keys = [f"{CRAWL}/{i:05d}" for i in range(2)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", keys)
        _run(instance, keys[0])
        _run(instance, keys[1], crash=True)  # PLANNED rows for keys[1], for good
        _run(instance, keys[1], checks_pass=False)  # newer rows: FAILED
        for tick in range(3):
            got = failed_shard_checks(instance, _blocking_keys())
            assert got == _dagster_answer(instance), tick
            assert all(v == {keys[1]} for v in got.values()), (tick, got)


def test_shard_assets_are_the_shard_partitioned_assets(embedded_env):
    graph = build_definitions(load_settings()).resolve_asset_graph()
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == shard_partitions}
    assert SHARD_ASSETS.resolve(graph) == partitioned


def test_publish_runs_again_after_a_published_shard_is_re_run(embedded_env):
    defs = build_definitions(load_settings())
    publish = dg.AssetSelection.groups("publish")
    keys = [f"{CRAWL}/{i:05d}" for i in range(3)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", keys)
        for key in keys[:2]:
            _run(instance, key)
        waiting = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish)
        assert waiting.get_num_requested(STG) == 0
        _run(instance, keys[2])
        ready = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                  cursor=waiting.cursor)
        assert ready.get_num_requested(STG) == 1
        instance.report_runless_asset_event(dg.AssetMaterialization(STG))  # the publish run did its work
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                    cursor=ready.cursor)
        assert settled.get_num_requested(STG) == 0  # handled: nothing new since

        _run(instance, keys[1])  # one shard re-run
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                  cursor=settled.cursor)
        assert again.get_num_requested(STG) == 1

        _run(instance, keys[2], checks_pass=False)  # a re-run whose blocking check fails holds publish
        held = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                 cursor=again.cursor)
        assert held.get_num_requested(STG) == 0


def test_a_shard_re_run_landing_in_the_tick_that_sees_the_publish_is_not_forgotten(embedded_env):
    """What stalled publish under the daemon (docs/operations.md): the tick after the one that
    requested publish sees both the publish's own materialization ("handled": newly requested /
    newly updated) and a shard re-run that landed after it. Dagster's SinceCondition lets the reset
    win when both are true on one tick and no timing says which came first (its OR operators carry
    none), so the shard update was dropped and no later tick requested anything. In-process this
    needs only the two events between two ticks."""
    defs = build_definitions(load_settings())
    publish = dg.AssetSelection.groups("publish")
    keys = [f"{CRAWL}/{i:05d}" for i in range(2)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", keys)
        for key in keys:
            _run(instance, key)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish)
        assert first.get_num_requested(STG) == 0  # initial evaluation: nothing new
        _run(instance, keys[0])
        ready = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                  cursor=first.cursor)
        assert ready.get_num_requested(STG) == 1
        instance.report_runless_asset_event(dg.AssetMaterialization(STG))  # the publish run did its work
        _run(instance, keys[1])  # ... and an operator re-ran a shard before the next tick
        tick = ready
        requested = []
        for _ in range(3):  # this tick, or a later one, must request the model again
            tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish,
                                                     cursor=tick.cursor)
            requested.append(tick.get_num_requested(STG))
        assert requested[0] == 1, requested
        assert requested[1:] == [0, 0], requested  # handled by that request: no loop
