"""Scheduled backfills: each tick launches `shard_job` runs for every registered crawl's
unmaterialized shards (oldest crawl first), never more than `max_concurrent_runs` shard runs in flight; publish follows by declarative
automation (`PUBLISH_CONDITION`) once every registered shard is materialized and its blocking checks
passed.

Why runs from a schedule rather than one big backfill: the in-flight bound is enforced against what
is really running (queued or started `shard_job` runs, whoever launched them), a shard that keeps
failing stops being retried after `max_failed_runs_per_shard`, and a month's crawl (~9k shard runs)
drains at a steady rate that the run queue and the `gpu` pool absorb.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from laion_assets.core.lib.validation import require_int_range
from laion_assets.defs.automation.shard_gate import gated_publish_condition
from laion_assets.defs.automation.shard_status import KEYS_PER_QUERY, failures_by_shard
from laion_assets.defs.jobs import shard_job
from laion_assets.settings import load_settings
from laion_assets.defs.lib.partitions import shard_partitions

LAST_STAGE = dg.AssetKey("filtered_pairs")  # a shard is done when its last stage is materialized
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
BACKFILL_TAG = "laion-assets/backfill"

# Publish (dbt models, then the release) runs when shards changed since it last ran, no shard of any
# registered crawl is missing or in progress, and no blocking check upstream failed on ANY shard.
# `all_deps_blocking_checks_passed()` is not that once the shard checks are partitioned: its
# `all_deps_match` maps a partitioned dep's true partitions onto the unpartitioned model, so one
# shard that passed lets the model through while another shard's blocking check failed. "No dep
# partition has a failed blocking check" is `~any_deps_match(any_checks_match(check_failed))`; a
# failed check that this tick re-runs (`will_be_requested`) does not block (the run itself stops
# the child if it fails again).
NO_BLOCKING_CHECK_FAILED = ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed() & ~dg.AutomationCondition.will_be_requested(), blocking_only=True,
    ).with_label("any_blocking_check_failed")
).with_label("no_blocking_check_failed_on_any_dep_partition")
# The same gate over every dep partition, as Dagster's conditions evaluate it: linear in the shards
# (docs/scaling.md); kept for `bench/instance_scale.py --condition eager`.
EAGER_PUBLISH_CONDITION = dg.AutomationCondition.eager() & NO_BLOCKING_CHECK_FAILED
# What the publish assets carry: the shard deps checked once per tick (`shard_gate.py`).
PUBLISH_CONDITION = gated_publish_condition(NO_BLOCKING_CHECK_FAILED)


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


# A failed run waits seconds for its automatic retry (the instance's `run_retries`); failed runs
# updated longer ago than this are not looked at for a pending retry.
RETRY_WINDOW = timedelta(days=1)


def in_flight_partitions(instance: dg.DagsterInstance) -> list[str]:
    """The partition of each shard run queued or running, and of each failed shard run whose
    automatic retry is not launched yet (`run_retries`: tagged `dagster/will_retry=true`, no
    `dagster/auto_retry_run_id` yet): that shard is about to run again, so the schedule must not
    launch it a second time, and it is not given up. Two run queries."""
    runs = instance.get_runs(dg.RunsFilter(job_name=shard_job.name, statuses=IN_FLIGHT))
    waiting = instance.get_runs(dg.RunsFilter(
        job_name=shard_job.name, statuses=[dg.DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"},
        updated_after=datetime.now(timezone.utc) - RETRY_WINDOW))
    return [r.tags.get("dagster/partition", "") for r in [*runs, *(w for w in waiting if w.is_complete_and_waiting_to_retry)]]


def plan_backfill(instance: dg.DagsterInstance, settings: BackfillSettings) -> tuple[list[str], str]:
    """The shards to launch now and a sentence saying why (for the tick's skip reason / log).

    Every registered crawl is backfilled, oldest crawl first (its missing shards block publish as
    much as the newest's), within one in-flight bound; the sentence says per crawl what is pending
    and names the shards left after repeated failures (`ops shards retry <key>` lets them run again)."""
    keys = sorted(instance.get_dynamic_partitions(shard_partitions.name))
    if not keys:
        return [], "no shard partitions registered: materialize crawl_manifest or turn on crawl discovery"
    in_flight = in_flight_partitions(instance)
    busy = set(in_flight)
    budget = settings.max_concurrent_runs - len(in_flight)
    done = instance.get_materialized_partitions(LAST_STAGE)
    todo = [k for k in keys if k not in done and k not in busy]
    if not todo:
        return [], f"every shard of {len({crawl_of(k) for k in keys})} crawls is materialized or in flight ({len(in_flight)} runs in flight)"
    pending = {c: sum(1 for k in todo if crawl_of(k) == c) for c in sorted({crawl_of(k) for k in todo})}
    per_crawl = ", ".join(f"{c}: {n} pending" for c, n in pending.items())
    if budget <= 0:
        return [], f"{len(in_flight)} shard runs in flight, limit {settings.max_concurrent_runs} ({per_crawl})"
    chosen, gave_up = [], []
    cap = settings.max_failed_runs_per_shard
    # sorted: oldest crawl first, then shard order; failures read a batch of keys at a time (a few
    # run queries each), only as far as the budget needs
    for i in range(0, len(todo), KEYS_PER_QUERY):
        if len(chosen) == budget:
            break
        batch = todo[i:i + KEYS_PER_QUERY]
        failures = failures_by_shard(instance, batch, cap=cap)
        for key in batch:
            if len(chosen) == budget:
                break
            if failures[key] >= cap:
                gave_up.append(key)
                continue
            chosen.append(key)
    why = (f"launching {len(chosen)} of {len(todo)} unmaterialized shards ({per_crawl}; "
           f"{len(in_flight)} in flight, limit {settings.max_concurrent_runs})")
    if gave_up:
        shown = ", ".join(gave_up[:20]) + (f" and {len(gave_up) - 20} more" if len(gave_up) > 20 else "")
        why += (f"; left after {settings.max_failed_runs_per_shard} failed runs: {shown} "
                "(fix, then `python -m laion_assets.ops shards retry <key>`)")
    return chosen, why


def build_shard_backfill_schedule(settings: BackfillSettings | None = None) -> dg.ScheduleDefinition:
    settings = settings or BackfillSettings.from_env()

    @dg.schedule(
        name="shard_backfill",
        cron_schedule=settings.cron,
        job=shard_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Every tick, shard_job runs for every registered crawl's unmaterialized shards (oldest "
        f"crawl first), at most {settings.max_concurrent_runs} shard runs in flight (LAION_BACKFILL_MAX_RUNS); "
        f"a shard with {settings.max_failed_runs_per_shard} failed runs since its last success is left for a "
        "person (python -m laion_assets.ops shards retry KEY lets it run again). Publish follows by "
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
