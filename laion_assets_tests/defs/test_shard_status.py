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


def _failures_one_by_one(instance, key, cap):
    """The per-shard reading `failures_by_shard` replaced (three run queries per shard)."""
    def runs(statuses, limit=None, tags=None):
        return instance.get_run_records(dg.RunsFilter(job_name="shard_job", statuses=statuses,
                                                      tags={"dagster/partition": key, **(tags or {})}),
                                        limit=limit, order_by="create_timestamp", ascending=False)
    failed = runs([dg.DagsterRunStatus.FAILURE], limit=cap)
    marks = [r.create_timestamp for r in runs([dg.DagsterRunStatus.SUCCESS], limit=1)]
    marks += [r.create_timestamp for r in runs([dg.DagsterRunStatus.FAILURE], 1, {"laion-assets/retry-cleared": "1"})]
    since = max(marks, default=None)
    return sum(1 for r in failed if since is None or r.create_timestamp > since)


def _history(instance, keys):
    """Five failure histories, in turn: none; one failure; given up (3); 2 failures, a success, 1
    failure; given up, cleared for a retry, 1 failure."""
    F, S = dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS
    patterns = [[], [F], [F, F, F], [F, F, S, F], [F, F, F, "clear", F]]
    for i, key in enumerate(keys):
        for step in patterns[i % len(patterns)]:
            if step == "clear":
                clear_failures(instance, key)
            else:
                _finished(instance, key, step)


class _RunQueries:
    """Counts the SQL statements that read the runs table (a SQLAlchemy engine event on the real
    SQLite run storage)."""

    def __init__(self):
        self.n = 0

    def __call__(self, conn, cursor, statement, *args):
        if "FROM runs" in statement:
            self.n += 1

    def __enter__(self):
        import sqlalchemy as sa
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        import sqlalchemy as sa
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self)


def test_failures_of_many_shards_take_a_bounded_number_of_run_queries():
    """crawl_progress and the schedule read every unfinished shard's failures in a few run queries
    (grouped per shard), with the same figures as one shard at a time; undone (a query or three per
    shard) the query count grows with the shards."""
    from laion_assets.defs.automation.progress import crawl_progress
    from laion_assets.defs.automation.shard_status import failures_by_shard

    settings = BackfillSettings(max_concurrent_runs=100, max_failed_runs_per_shard=3)
    counts = {}
    with dg.instance_for_test() as instance:
        for n in (10, 40):
            crawl = f"CC-MAIN-2030-{n:02d}"
            keys = [f"{crawl}/{i:05d}" for i in range(n)]
            instance.add_dynamic_partitions("shards", keys)
            _history(instance, keys)
            expected = {k: _failures_one_by_one(instance, k, 3) for k in keys}
            assert sorted(set(expected.values())) == [0, 1, 3]  # every history is there
            assert failures_by_shard(instance, keys, cap=3) == expected
            with _RunQueries() as q:
                (progress,) = [p for p in crawl_progress(instance, settings) if p.crawl == crawl]
            assert progress.given_up == sorted(k for k, v in expected.items() if v >= 3)
            assert progress.failed == sum(1 for v in expected.values() if 0 < v < 3)
            with _RunQueries() as b:
                chosen, why = plan_backfill(instance, settings)
            counts[n] = (q.n, b.n)
        assert set(chosen) == {k for k in instance.get_dynamic_partitions("shards")
                               if _failures_one_by_one(instance, k, 3) < 3}
        assert "left after 3 failed runs" in why
    assert counts[10] == counts[40] and max(counts[40]) <= 5, counts


def test_a_failed_run_waiting_for_its_automatic_retry_counts_as_in_flight():
    """The instance's `run_retries` re-runs a failed run a moment after it failed (the run is
    tagged `dagster/will_retry=true` until the retry is launched). Meanwhile the schedule launched
    the shard a second time and the progress view counted it failed or given up, then in flight
    (seen under the daemon: `test_postgres_daemon.py` saw the shard given up, and the report it
    launched next said 0 given up)."""
    from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG

    from laion_assets.defs.automation.progress import crawl_progress

    settings = BackfillSettings(max_concurrent_runs=4, max_failed_runs_per_shard=3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [A, B])
        for _ in range(3):
            _finished(instance, B, dg.DagsterRunStatus.FAILURE)  # B: given up
        for _ in range(2):
            _finished(instance, A, dg.DagsterRunStatus.FAILURE)
        waiting = str(uuid.uuid4())  # A's third failure, its automatic retry still to come
        instance.add_run(dg.DagsterRun(job_name="shard_job", run_id=waiting, status=dg.DagsterRunStatus.FAILURE,
                                       tags={"dagster/partition": A, WILL_RETRY_TAG: "true"}))
        keys, why = plan_backfill(instance, settings)
        assert keys == [] and f"left after 3 failed runs: {B}" in why and A not in why
        (p,) = crawl_progress(instance, settings)
        assert (p.in_flight, p.failed, p.given_up) == (1, 0, [B])

        instance.add_run_tags(waiting, {AUTO_RETRY_RUN_ID_TAG: str(uuid.uuid4())})  # the retry was launched
        (p,) = crawl_progress(instance, settings)  # (its run would be in flight; not made here)
        assert (p.in_flight, p.given_up) == (0, sorted([A, B]))
