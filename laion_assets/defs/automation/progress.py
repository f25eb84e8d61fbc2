"""Gather a crawl's progress (core/crawl/progress.py) from a Dagster instance: registered shards,
materialized partitions per stage, row counts from the newest materialization of each shard,
in-flight and failed runs, and given-up shards (the failures of every unfinished shard in a
bounded number of run queries: `failures_by_shard`)."""

from __future__ import annotations

import dagster as dg

from laion_assets.core.crawl.progress import STAGES, CrawlProgress
from laion_assets.defs.automation.schedules import BackfillSettings, crawl_of, in_flight_partitions
from laion_assets.defs.automation.shard_status import failures_by_shard
from laion_assets.defs.lib.partitions import shard_partitions

PAGE = 1000


def _latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, tuple[float, dict]]:
    """partition -> (timestamp, metadata) of its newest materialization, paging through records."""
    out: dict[str, tuple[float, dict]] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetKey(asset), limit=PAGE, cursor=cursor, ascending=True)
        for r in page.records:
            if r.partition_key:
                mat = r.asset_materialization
                out[r.partition_key] = (r.timestamp, {k: getattr(v, "value", v) for k, v in (mat.metadata if mat else {}).items()})
        if not page.has_more:
            return out
        cursor = page.cursor


def crawl_progress(instance: dg.DagsterInstance, settings: BackfillSettings | None = None) -> list[CrawlProgress]:
    settings = settings or BackfillSettings.from_env()
    keys = sorted(instance.get_dynamic_partitions(shard_partitions.name))
    crawls = {c: CrawlProgress(c, sum(1 for k in keys if crawl_of(k) == c)) for c in sorted({crawl_of(k) for k in keys})}
    materialized = {s: instance.get_materialized_partitions(dg.AssetKey(s)) & set(keys) for s in STAGES}
    for stage, parts in materialized.items():
        for k in parts:
            crawls[crawl_of(k)].materialized[stage] = crawls[crawl_of(k)].materialized.get(stage, 0) + 1
    for k, (_, md) in _latest_metadata(instance, "image_text_pairs").items():
        if crawl_of(k) in crawls:
            crawls[crawl_of(k)].pairs += int(md.get("rows") or 0)
    for k, (_, md) in _latest_metadata(instance, "image_downloads").items():
        if crawl_of(k) in crawls:
            crawls[crawl_of(k)].images_attempted += int(md.get("rows") or 0)
            crawls[crawl_of(k)].images_ok += int(md.get("ok") or 0)
    for k, (ts, _) in _latest_metadata(instance, STAGES[-1]).items():
        if crawl_of(k) in crawls:
            crawls[crawl_of(k)].done_timestamps.append(ts)
    busy = set(in_flight_partitions(instance))  # running, queued, or failed with its automatic retry pending
    unfinished = [k for k in keys if k not in busy and k not in materialized[STAGES[-1]]]
    failures = failures_by_shard(instance, unfinished, cap=settings.max_failed_runs_per_shard)  # a few run queries
    for k in keys:
        p = crawls[crawl_of(k)]
        if k in busy:
            p.in_flight += 1
        elif failures.get(k, 0) >= settings.max_failed_runs_per_shard:
            p.given_up.append(k)
        elif failures.get(k, 0):
            p.failed += 1
    return list(crawls.values())
