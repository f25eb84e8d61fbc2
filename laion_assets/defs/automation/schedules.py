"""Scheduled backfills: each tick launches `shard_job` runs for the newest crawl's unmaterialized
shards, never more than `max_concurrent_runs` shard runs in flight; publish follows by declarative
automation (`PUBLISH_CONDITION`) once every registered shard is materialized and its blocking checks
passed.

Why runs from a schedule rather than one big backfill: the in-flight bound is enforced against what
is really running (queued or started `shard_job` runs, whoever launched them), a shard that keeps
failing stops being retried after `max_failed_runs_per_shard`, and a month's crawl (~9k shard runs)
drains at a steady rate that the run queue and the `gpu` pool absorb.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg

from laion_assets.core.lib.validation import require_int_range
from laion_assets.defs.jobs import shard_job
from laion_assets.settings import load_settings
from laion_assets.defs.lib.partitions import shard_partitions

LAST_STAGE = dg.AssetKey("filtered_pairs")  # a shard is done when its last stage is materialized
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
BACKFILL_TAG = "laion-assets/backfill"

# Publish (dbt models, then the release) runs when shards changed since it last ran, no shard of any
# registered crawl is missing or in progress, and every blocking check upstream passed.
PUBLISH_CONDITION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


@dataclass(frozen=True)
class BackfillSettings:
    """`max_concurrent_runs`: shard runs in flight at most (runs); `max_failed_runs_per_shard`:
    failed runs after which a shard is left for a person (runs); `cron`: when the schedule ticks."""

    max_concurrent_runs: int = 8
    max_failed_runs_per_shard: int = 3
    cron: str = "*/10 * * * *"

    def __post_init__(self) -> None:
        require_int_range("LAION_BACKFILL_MAX_RUNS", self.max_concurrent_runs, 1, 10_000)
        require_int_range("LAION_BACKFILL_MAX_FAILED_RUNS", self.max_failed_runs_per_shard, 1, 100)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BackfillSettings:
        """From the `LAION_BACKFILL_*` settings (`laion_assets/settings.py`)."""
        s = load_settings(env)
        return cls(max_concurrent_runs=s.backfill_max_runs, max_failed_runs_per_shard=s.backfill_max_failed_runs,
                   cron=s.backfill_cron)


def crawl_of(partition_key: str) -> str:
    return partition_key.split("/", 1)[0]


def newest_crawl(keys: list[str]) -> str | None:
    """Newest by crawl name: CC-MAIN-YYYY-WW sorts in time order."""
    return max((crawl_of(k) for k in keys), default=None)


def in_flight_partitions(instance: dg.DagsterInstance) -> list[str]:
    runs = instance.get_runs(dg.RunsFilter(job_name=shard_job.name, statuses=IN_FLIGHT))
    return [r.tags.get("dagster/partition", "") for r in runs]


def failed_runs(instance: dg.DagsterInstance, partition_key: str) -> int:
    return instance.get_runs_count(dg.RunsFilter(
        job_name=shard_job.name, statuses=[dg.DagsterRunStatus.FAILURE], tags={"dagster/partition": partition_key}
    ))


def plan_backfill(instance: dg.DagsterInstance, settings: BackfillSettings) -> tuple[list[str], str]:
    """The shards to launch now and a sentence saying why (for the tick's skip reason / log)."""
    keys = sorted(instance.get_dynamic_partitions(shard_partitions.name))
    crawl = newest_crawl(keys)
    if crawl is None:
        return [], "no shard partitions registered: materialize crawl_manifest or turn on crawl discovery"
    in_flight = in_flight_partitions(instance)
    budget = settings.max_concurrent_runs - len(in_flight)
    done = instance.get_materialized_partitions(LAST_STAGE)
    todo = [k for k in keys if crawl_of(k) == crawl and k not in done and k not in set(in_flight)]
    if not todo:
        return [], f"{crawl}: every shard is materialized or in flight ({len(in_flight)} runs in flight)"
    if budget <= 0:
        return [], f"{crawl}: {len(in_flight)} shard runs in flight, limit {settings.max_concurrent_runs}"
    chosen, gave_up = [], 0
    for key in todo:
        if len(chosen) == budget:
            break
        if failed_runs(instance, key) >= settings.max_failed_runs_per_shard:
            gave_up += 1
            continue
        chosen.append(key)
    why = (f"{crawl}: launching {len(chosen)} of {len(todo)} unmaterialized shards "
           f"({len(in_flight)} in flight, limit {settings.max_concurrent_runs}, {gave_up} left after repeated failures)")
    return chosen, why


def build_shard_backfill_schedule(settings: BackfillSettings | None = None) -> dg.ScheduleDefinition:
    settings = settings or BackfillSettings.from_env()

    @dg.schedule(
        name="shard_backfill",
        cron_schedule=settings.cron,
        job=shard_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Every tick, `shard_job` runs for the newest crawl's unmaterialized shards, at most "
        f"{settings.max_concurrent_runs} shard runs in flight (`LAION_BACKFILL_MAX_RUNS`); a shard with "
        f"{settings.max_failed_runs_per_shard} failed runs is left for a person. Publish follows by "
        "declarative automation once every shard is done.",
    )
    def shard_backfill(context: dg.ScheduleEvaluationContext):
        keys, why = plan_backfill(context.instance, settings)
        context.log.info(why)
        if not keys:
            return dg.SkipReason(why)
        # In-flight and materialized shards are already left out; the key only names the request.
        tick = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return [
            dg.RunRequest(run_key=f"{k}@{tick}", partition_key=k, tags={BACKFILL_TAG: crawl_of(k)}) for k in keys
        ]

    return shard_backfill
