"""`crawl_progress_schedule`: refreshes `crawl_progress` every 10 minutes, only when a shard run
changed (created, started, finished) or the registered shards changed since the last refresh, so an
idle instance records no runs."""

from __future__ import annotations

import dagster as dg

from laion_assets.defs.jobs import progress_job
from laion_assets.defs.progress.assets import shard_runs_mark
from laion_assets.defs.lib.partitions import shard_partitions

PROGRESS_ASSET = dg.AssetKey("crawl_progress")
CRON = "*/10 * * * *"


def refresh_reason(instance: dg.DagsterInstance) -> str | None:
    """Why the report is stale (None: it is current). Two indexed reads and the key count."""
    last = instance.get_latest_materialization_event(PROGRESS_ASSET)
    if last is None:
        return "no progress report yet"
    seen = last.asset_materialization.metadata.get("shard_runs_mark")
    mark = shard_runs_mark(instance)
    if seen is None or seen.value != mark:
        return f"shard runs by status ({mark or 'none'}) changed since the last report"
    reported = last.asset_materialization.metadata.get("shards_registered")
    registered = len(instance.get_dynamic_partitions(shard_partitions.name))
    if reported is None or reported.value != registered:
        return f"{registered} shards registered, the last report counted {reported.value if reported else '?'}"
    return None


@dg.schedule(
    name="crawl_progress_schedule",
    cron_schedule=CRON,
    job=progress_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes, refreshes the crawl_progress report (per-crawl shards, rows, download "
    "success rate, time left) when a shard run or the registered shards changed since the last refresh.",
)
def crawl_progress_schedule(context: dg.ScheduleEvaluationContext):
    why = refresh_reason(context.instance)
    if why is None:
        return dg.SkipReason("no shard run and no registered shard changed since the last report")
    context.log.info(why)
    return dg.RunRequest(run_key=None, tags={"laion-assets/report": "crawl_progress"})
