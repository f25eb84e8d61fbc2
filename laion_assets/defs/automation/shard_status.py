"""What the instance knows about each shard: its checks' latest status, its failed runs since it
last succeeded (or was cleared for a retry), and which shards the schedule has given up on.

Failures count from the shard's newest successful `shard_job` run or its newest retry mark
(`RETRY_TAG` on a cleared run, see `clear_failures`), whichever is later: a shard fixed and
re-run starts from zero, and an operator can let the schedule retry a given-up shard without
deleting history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

SHARD_JOB = "shard_job"
RETRY_TAG = "laion-assets/retry-cleared"  # on a failed run: failures up to and including it are forgiven
FINISHED_FAILED = [dg.DagsterRunStatus.FAILURE]


@dataclass(frozen=True)
class CheckStatus:
    asset: str
    check: str
    partition: str
    status: str  # SUCCEEDED, FAILED, PLANNED (running, or its run failed first) or MISSING (never evaluated)
    severity: str | None
    failing_rows: int | None


def shard_check_status(instance: dg.DagsterInstance, asset: str, checks: Sequence[str],
                       partition_key: str) -> list[CheckStatus]:
    """Each check's newest evaluation for one shard (partitioned checks record one per shard)."""
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), c) for c in checks]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        keys, partition_filter=PartitionKeyFilter(key=partition_key))
    out = []
    for key in keys:
        record = latest.get(key)
        # A PLANNED record (its run failed or runs before the check) carries no evaluation fields.
        evaluation = record.evaluation if record else None
        rows = getattr(evaluation, "metadata", {}).get("failing_rows")
        severity = getattr(evaluation, "severity", None)
        out.append(CheckStatus(
            asset, key.name, partition_key,
            record.status.value if record else "MISSING",
            severity.value if severity else None,
            rows.value if rows is not None else None,
        ))
    return out


def _runs(instance: dg.DagsterInstance, key: str, statuses: list[dg.DagsterRunStatus], limit: int | None = None,
          tags: dict[str, str] | None = None):
    return instance.get_run_records(
        dg.RunsFilter(job_name=SHARD_JOB, statuses=statuses, tags={"dagster/partition": key, **(tags or {})}),
        limit=limit, order_by="create_timestamp", ascending=False)


def failures_since_last_success(instance: dg.DagsterInstance, key: str, cap: int = 100) -> int:
    """Failed shard runs created after the shard's newest success or retry mark (at most `cap`)."""
    failed = _runs(instance, key, FINISHED_FAILED, limit=cap)
    if not failed:  # most shards: one query per tick
        return 0
    marks = [r.create_timestamp for r in _runs(instance, key, [dg.DagsterRunStatus.SUCCESS], limit=1)]
    marks += [r.create_timestamp for r in _runs(instance, key, FINISHED_FAILED, limit=1, tags={RETRY_TAG: "1"})]
    since = max(marks, default=None)
    return sum(1 for r in failed if since is None or r.create_timestamp > since)


def given_up_shards(instance: dg.DagsterInstance, keys: Iterable[str], max_failed_runs: int) -> list[str]:
    """Shards with `max_failed_runs` failures since their last success/retry mark, sorted."""
    return sorted(k for k in keys if failures_since_last_success(instance, k, cap=max_failed_runs) >= max_failed_runs)


def clear_failures(instance: dg.DagsterInstance, key: str) -> str | None:
    """Let the schedule retry `key`: tag its newest failed run with `RETRY_TAG`, which resets its
    failure count to zero. Returns that run's id (None when the shard has no failed run)."""
    newest = _runs(instance, key, FINISHED_FAILED, limit=1)
    if not newest:
        return None
    run_id = newest[0].dagster_run.run_id
    instance.add_run_tags(run_id, {RETRY_TAG: "1"})
    return run_id


def failing_check_statuses(statuses: Iterable[CheckStatus]) -> list[CheckStatus]:
    return [s for s in statuses if s.status == AssetCheckExecutionRecordStatus.FAILED.value]
