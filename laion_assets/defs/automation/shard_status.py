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


def _runs(instance: dg.DagsterInstance, key: str | Sequence[str], statuses: list[dg.DagsterRunStatus],
          limit: int | None = None, tags: dict[str, str] | None = None):
    """`shard_job` run records of one shard (or of several: one `IN` on the partition tag), newest first."""
    keys = key if isinstance(key, str) else sorted(key)
    return instance.get_run_records(
        dg.RunsFilter(job_name=SHARD_JOB, statuses=statuses, tags={"dagster/partition": keys, **(tags or {})}),
        limit=limit, order_by="create_timestamp", ascending=False)


KEYS_PER_QUERY = 1000  # shard keys in one run query's `IN` list (SQLite allows 32,766 variables)


def _by_shard(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:  # newest first, kept in that order per shard
        out.setdefault(r.dagster_run.tags.get("dagster/partition", ""), []).append(r)
    return out


def failures_by_shard(instance: dg.DagsterInstance, keys: Iterable[str], cap: int = 100) -> dict[str, int]:
    """Per shard, its failed runs created after its newest success or retry mark (at most `cap`).

    At most 3 run queries per `KEYS_PER_QUERY` keys, whatever their failures (the failed runs of
    the keys; then, for the keys that have any, their successful runs and their retry marks),
    grouped here: not one query per shard."""
    keys = sorted(set(keys))
    out = dict.fromkeys(keys, 0)
    for i in range(0, len(keys), KEYS_PER_QUERY):
        failed = _by_shard(_runs(instance, keys[i:i + KEYS_PER_QUERY], FINISHED_FAILED))
        if not failed:  # most shards: one query
            continue
        marks: dict[str, float] = {}
        for records in (_runs(instance, list(failed), [dg.DagsterRunStatus.SUCCESS]),
                        _runs(instance, list(failed), FINISHED_FAILED, tags={RETRY_TAG: "1"})):
            for key, runs in _by_shard(records).items():
                marks[key] = max(marks.get(key, runs[0].create_timestamp), runs[0].create_timestamp)
        for key, runs in failed.items():
            if key in out:
                since = marks.get(key)
                out[key] = sum(1 for r in runs[:cap] if since is None or r.create_timestamp > since)
    return out


def failures_since_last_success(instance: dg.DagsterInstance, key: str, cap: int = 100) -> int:
    """Failed shard runs created after the shard's newest success or retry mark (at most `cap`)."""
    return failures_by_shard(instance, [key], cap=cap)[key]


def given_up_shards(instance: dg.DagsterInstance, keys: Iterable[str], max_failed_runs: int) -> list[str]:
    """Shards with `max_failed_runs` failures since their last success/retry mark, sorted."""
    counts = failures_by_shard(instance, keys, cap=max_failed_runs)
    return sorted(k for k, n in counts.items() if n >= max_failed_runs)


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
