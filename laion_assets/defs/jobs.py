"""Jobs: the per-shard pipeline (what backfills run) and the crawl-wide steps around it."""

import json

import dagster as dg

from laion_assets.defs.clip.assets import GPU_TAGS
from laion_assets.defs.lib.partitions import shard_partitions

SHARD_STAGES = ["image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs"]

crawl_job = dg.define_asset_job(
    "crawl_job",
    selection=dg.AssetSelection.groups("sample", "crawl"),
    description="Make the sample crawl (embedded default) and register the crawl's shards.",
)

shard_job = dg.define_asset_job(
    "shard_job",
    # filtered_pairs_drop_log: the last stage's second output (one step writes both).
    selection=dg.AssetSelection.assets(*SHARD_STAGES, "filtered_pairs_drop_log"),
    partitions_def=shard_partitions,
    description="One shard end to end: extract, download, CLIP-score, filter, in one process. Backfills "
    "and the `shard_backfill` schedule run this. Partitions (`<crawl>/<shard>`) appear once `crawl_job` "
    "materialized a crawl's manifest or the crawl discovery sensor registered the crawl.",
)

publish_job = dg.define_asset_job(
    "publish_job",
    selection=dg.AssetSelection.groups("removal", "publish"),
    description="Removal sources, dbt over every shard (removal anti-join, placeholders, dedup, drop "
    "log, stats), then every release variant. After a removal request it re-derives every release "
    "from the stored shards (nothing is re-downloaded or re-scored): `removal_requests_sensor` launches it.",
)

clip_job = dg.define_asset_job(
    "clip_job",
    selection=dg.AssetSelection.assets("clip_scores"),
    partitions_def=shard_partitions,
    tags={
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in GPU_TAGS.items()},
        # What deploy/*/dagster.yaml's run tag limit counts (runs holding a GPU at once).
        "laion-assets/gpu": "1",
    },
    description="Only the GPU stage, for backfills on GPU nodes (run tags request one GPU). "
    "Steps of `clip_scores` share the `gpu` pool: set its limit to the GPUs you have.",
)

progress_job = dg.define_asset_job(
    "progress_job",
    selection=dg.AssetSelection.assets("crawl_progress"),
    description="Refresh the crawl_progress report (reads the instance only); crawl_progress_schedule runs it.",
)

JOBS = [crawl_job, shard_job, clip_job, publish_job, progress_job]
