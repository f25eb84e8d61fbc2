"""`crawl_progress`: the operator's per-crawl view in the UI, the same figures as
`python -m laion_assets.ops progress` (one computation: `defs/automation/progress.py` over
`core/crawl/progress.py`).

Why an asset: Dagster plots an asset's numeric metadata over its materializations, so each refresh
adds a point to the shards-done, failed, pairs and ETA series; the table shows the crawls side by
side. `crawl_progress_schedule` refreshes it while shard runs change (`schedules.py`).
"""

import time

import dagster as dg

from laion_assets.core.crawl.progress import STAGES, CrawlProgress, format_summary
from laion_assets.defs.automation.progress import crawl_progress as gather_progress
from laion_assets.defs.automation.schedules import BackfillSettings

# Per-crawl figures also plotted one series per crawl (`<crawl>/<figure>`); the totals always are.
PLOTTED = ("shards_done", "shards_failed", "shards_given_up", "pairs", "eta_h")
COLUMN_TYPES = {"crawl": "string", "download_success_rate": "float", "eta_h": "float"}


def _figures(rows: list[dict]) -> dict[str, float | int]:
    """Numeric totals of the table's rows (what the plot shows over refreshes); rate and ETA are
    left out while unknown (no download yet / no shard done in the window)."""
    total = {k: sum(r[k] for r in rows) for k in ("registered", "in_flight", "failed", "given_up", "pairs", "images_ok")}
    done = sum(r[f"done_{STAGES[-1]}"] for r in rows)
    out: dict[str, float | int] = {
        "shards_registered": total["registered"], "shards_done": done, "shards_in_flight": total["in_flight"],
        "shards_failed": total["failed"], "shards_given_up": total["given_up"], "pairs": total["pairs"],
        "images_ok": total["images_ok"],
        **{f"shards_done_{s}": sum(r[f"done_{s}"] for r in rows) for s in STAGES[:-1]},
    }
    return out


def _per_crawl(row: dict) -> dict[str, float | int]:
    named = {"shards_done": row[f"done_{STAGES[-1]}"], "shards_failed": row["failed"],
             "shards_given_up": row["given_up"], "pairs": row["pairs"], "eta_h": row["eta_h"]}
    return {f"{row['crawl']}/{k}": v for k, v in named.items() if v is not None}


def progress_metadata(progress: list[CrawlProgress], now: float) -> dict[str, object]:
    rows = [p.as_row(now) for p in progress]
    attempted = sum(p.images_attempted for p in progress)
    ok = sum(p.images_ok for p in progress)
    etas = [p.eta_s(now) for p in progress]
    columns = list(rows[0]) if rows else ["crawl"]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, COLUMN_TYPES.get(c, "int")) for c in columns])
    given_up = {p.crawl: p.given_up for p in progress if p.given_up}
    metadata: dict[str, object] = {
        "crawls": dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=schema),
        "summary": dg.MetadataValue.md("```\n" + format_summary(progress, now) + "\n```"),
        "given_up_shards": dg.MetadataValue.json(given_up),
        **_figures(rows),
    }
    if attempted:
        metadata["download_success_rate"] = round(ok / attempted, 4)
    if rows and all(e is not None for e in etas):  # the crawl finishing last
        metadata["eta_h"] = round(max(etas) / 3600, 2)
    for r in rows:
        metadata.update(_per_crawl(r))
    return metadata


def shard_runs_mark(instance: dg.DagsterInstance) -> str:
    """How many shard runs are in each status: it changes whenever a shard run is created or
    changes status (statuses only move forward, so no set of changes leaves every count as it
    was). Not a time: SQLite keeps run update times to the second, so a run changed in the
    report's second would look older than it, and ties would hide it from "newest first"."""
    counts = {s.value: instance.get_runs_count(dg.RunsFilter(job_name="shard_job", statuses=[s]))
              for s in dg.DagsterRunStatus}
    return ",".join(f"{s}={n}" for s, n in counts.items() if n)


@dg.asset(
    group_name="reports",
    kinds={"dagster"},
    description="Per crawl: shards registered, done per stage, in flight, failed, given up; pairs and "
    "images so far, download success rate, time left at the last 6 hours' rate. Numeric metadata "
    "(totals and `<crawl>/<figure>`) is plotted over refreshes (Plots tab). The same figures as "
    "`python -m laion_assets.ops progress`; refreshed by `crawl_progress_schedule` while shard runs "
    "change. Reads the instance only (no data files).",
)
def crawl_progress(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    mark = shard_runs_mark(context.instance)  # read before the figures: a run changing meanwhile refreshes again
    progress = gather_progress(context.instance, BackfillSettings.from_env())
    context.log.info(format_summary(progress, time.time()))
    return dg.MaterializeResult(metadata={**progress_metadata(progress, time.time()), "shard_runs_mark": mark})
