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

takedown_job = dg.define_asset_job(
    "takedown_job",
    # publish_job without its dbt models: every removal change reaches them (removal_matches ->
    # release_drops -> drop_log ...), but the incremental re-derive reads the release index, not them.
    selection=dg.AssetSelection.groups("removal", "publish") - dg.AssetSelection.kind("dbt"),
    description="The removal-only re-derive: removal sources, then every release variant by the "
    "incremental path (only the parts holding removed rows rewritten; withdrawal, purge), the search "
    "index and the receipts; no dbt model is built. `published_dataset` refuses the full build here "
    "(the warehouse predates the removal list): `takedown rederive` and `removal_requests_sensor` "
    "launch it only when nothing but removal entries changed, and fall back to `publish_job` "
    "when it declines (`defs/removal/fast_path.py`).",
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

JOBS = [crawl_job, shard_job, clip_job, publish_job, takedown_job, progress_job]
