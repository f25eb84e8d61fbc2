"""Per-shard check status (partitioned checks on a real instance), failures counted since a shard's
last success, the retry mark that lets the schedule run a given-up shard again, and the alert that
names the failing rows' keys."""

import time
import uuid

import dagster as dg

from laion_assets.core.checks import CheckOutcome
from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.defs.automation.sensors import AlertWebhookResource, run_alerts
from laion_assets.defs.automation.schedules import BackfillSettings, plan_backfill
from laion_assets.defs.automation.shard_status import (
    clear_failures,
    failures_since_last_success,
    given_up_shards,
    shard_check_status,
)
from laion_assets.defs.filter.assets import filtered_pairs_checks
from laion_assets.defs.lib.checks import check_result
from laion_assets.defs.lib.partitions import shard_partitions

A, B = "CC-MAIN-2024-22/00000", "CC-MAIN-2024-22/00001"
WARN_CHECK = next(c for c in FILTER_CHECKS if not c.blocking)


class Outcome(dg.Config):
    fail_warn_check: bool = False


@dg.asset(name="filtered_pairs", partitions_def=shard_partitions, check_specs=filtered_pairs_checks.specs)
def filtered_stand_in(config: Outcome) -> dg.MaterializeResult:
    """The real stage's specs and result builder; only the DuckDB outcomes are given."""
    results = []
    for c in FILTER_CHECKS:
        bad = config.fail_warn_check and c is WARN_CHECK
        sample = [{"key": "000000007", "url": "http://x/7.jpg"}, {"key": "000000011", "url": "http://x/11.jpg"}]
        outcome = CheckOutcome(c.name, not bad, 2 if bad else 0, sample if bad else [], c.description)
        results.append(check_result(c, outcome, None))
    return dg.MaterializeResult(check_results=results)


def _run(instance, key, fail=False):
    return dg.materialize([filtered_stand_in], instance=instance, partition_key=key, raise_on_error=False,
                          run_config={"ops": {"filtered_pairs": {"config": {"fail_warn_check": fail}}}})


def test_shard_stage_checks_are_partitioned_like_their_assets():
    assert all(s.partitions_def == shard_partitions for s in filtered_pairs_checks.specs)


def test_one_shards_failed_check_leaves_the_others_status_passed():
    names = [c.name for c in FILTER_CHECKS]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [A, B])
        _run(instance, A)
        bad = _run(instance, B, fail=True)  # B ran last and failed a WARN check
        a = {s.check: s.status for s in shard_check_status(instance, "filtered_pairs", names, A)}
        b = {s.check: s.status for s in shard_check_status(instance, "filtered_pairs", names, B)}
        assert set(a.values()) == {"SUCCEEDED"}
        assert b[WARN_CHECK.name] == "FAILED" and sum(v == "FAILED" for v in b.values()) == 1
        records = instance.get_records_for_run(bad.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        assert {r.event_log_entry.dagster_event.event_specific_data.partition for r in records} == {B}

        alerts = run_alerts(instance, instance.get_run_by_id(bad.run_id), AlertWebhookResource(url="http://127.0.0.1:9"))
        (_, alert), = alerts
        assert alert.fields["partition"] == B
        assert "`000000007`, `000000011`" in alert.message and "2 failing rows" in alert.message

        _run(instance, B)  # fixed: B passes again, A untouched
        b = {s.check: s.status for s in shard_check_status(instance, "filtered_pairs", names, B)}
        assert set(b.values()) == {"SUCCEEDED"}


def _finished(instance, key, status):
    instance.add_run(dg.DagsterRun(job_name="shard_job", run_id=str(uuid.uuid4()), status=status,
                                   tags={"dagster/partition": key}))
    time.sleep(0.01)  # runs are ordered by creation time


def test_failures_count_since_the_last_success_and_a_retry_mark_resets_them():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [A, B])
        for _ in range(2):
            _finished(instance, A, dg.DagsterRunStatus.FAILURE)
        _finished(instance, A, dg.DagsterRunStatus.SUCCESS)
        _finished(instance, A, dg.DagsterRunStatus.FAILURE)
        assert failures_since_last_success(instance, A) == 1  # the two before the success are forgiven

        for _ in range(3):
            _finished(instance, B, dg.DagsterRunStatus.FAILURE)
        settings = BackfillSettings(max_concurrent_runs=4, max_failed_runs_per_shard=3)
        assert given_up_shards(instance, [A, B], 3) == [B]
        keys, why = plan_backfill(instance, settings)
        assert keys == [A] and f"left after 3 failed runs: {B}" in why

        assert clear_failures(instance, B) is not None  # the operator fixed the cause
        assert failures_since_last_success(instance, B) == 0
        keys, _ = plan_backfill(instance, settings)
        assert keys == [A, B]
        _finished(instance, B, dg.DagsterRunStatus.FAILURE)
        assert failures_since_last_success(instance, B) == 1  # counting starts again after the mark


@dg.asset(name="filtered_pairs", partitions_def=shard_partitions, check_specs=filtered_pairs_checks.specs)
def filtered_failing_stand_in() -> dg.MaterializeResult:
    """The stage's step failing before its checks (a missing WARC upstream, a crash)."""
    raise RuntimeError("the step failed before its checks ran")


def test_a_shard_whose_run_failed_before_its_checks_reads_as_planned():
    """Seen under the daemon: a failed run leaves PLANNED check records, which carry no evaluation
    metadata; reading the shard's status crashed on them (AttributeError)."""
    names = [c.name for c in FILTER_CHECKS]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [A])
        result = dg.materialize([filtered_failing_stand_in], instance=instance, partition_key=A, raise_on_error=False)
        assert not result.success
        status = shard_check_status(instance, "filtered_pairs", names, A)
        assert {s.status for s in status} == {"PLANNED"}
        assert {(s.severity, s.failing_rows) for s in status} == {(None, None)}
