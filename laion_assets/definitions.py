"""The one `Definitions` object of the code location (workspace.yaml points here)."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from laion_assets.defs.automation.sensors import AlertWebhookResource, failure_alerts
from laion_assets.defs.automation.schedules import build_shard_backfill_schedule
from laion_assets.defs.automation.sensors import publish_automation
from laion_assets.defs.lib.checks import ui_text
from laion_assets.defs.clip.assets import clip_scores
from laion_assets.defs.crawl.assets import build_crawl_manifest
from laion_assets.defs.crawl.sensors import crawl_discovery_sensor
from laion_assets.defs.dbt.assets import laion_dbt_models
from laion_assets.defs.dbt.project import dbt_cli
from laion_assets.defs.download.assets import image_downloads
from laion_assets.defs.extract.assets import image_text_pairs
from laion_assets.defs.filter.assets import filtered_pairs
from laion_assets.defs.jobs import JOBS
from laion_assets.defs.progress.assets import crawl_progress
from laion_assets.defs.progress.schedules import crawl_progress_schedule
from laion_assets.defs.release.assets import (
    EMBEDDED_VARIANTS,
    ReleasePolicyResource,
    published_dataset,
)
from laion_assets.defs.removal.assets import removal_list
from laion_assets.defs.removal.receipts import removal_receipts
from laion_assets.defs.removal.sensors import removal_requests_sensor
from laion_assets.defs.clip.resources import ClipModelResource
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.download.resources import DownloaderResource
from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.sample.assets import sample_crawl
from laion_assets.defs.search.assets import search_index
from laion_assets.settings import ALERT_WEBHOOK_ENV, AWS_KEY_VARS, Settings, load_settings


def _s3_resource(settings: Settings, *, anonymous: bool = False, endpoint_url: str | None = None) -> S3Resource:
    """dagster-aws's S3Resource; keys come from EnvVars (resolved at run time, never stored or shown)."""
    fields = dict(zip(AWS_KEY_VARS, ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")))
    keys = {} if anonymous else {fields[var]: dg.EnvVar(var) for var in settings.aws_key_vars}
    return S3Resource(endpoint_url=endpoint_url, region_name=settings.s3_region,
                      use_unsigned_session=anonymous, **keys)


def build_resources(settings: Settings) -> dict[str, object]:
    storage = StorageResource(root=settings.root, s3=_s3_resource(settings, endpoint_url=settings.s3_endpoint_url),
                              cache_dir=settings.local_cache_dir)
    return {
        "storage": storage,
        "crawl_source": CrawlSourceResource(
            crawl=settings.crawl, source_dir=settings.crawl_source, files_per_shard=settings.files_per_shard,
            max_files=settings.crawl_max_files,
            discovery_root=settings.crawl_discovery_root,
            discover_only=list(settings.crawl_discover_only),
            discover_newer_than=settings.crawl_discover_newer_than,
            s3=_s3_resource(settings, anonymous=settings.crawl_source_anonymous,
                            endpoint_url=settings.crawl_s3_endpoint_url),
        ),
        "downloader": DownloaderResource(allow_private_hosts=list(settings.allow_private_hosts)),
        "clip_model": ClipModelResource(
            model_name=settings.clip_model, pretrained=settings.clip_pretrained, device=settings.clip_device
        ),
        "sample_image_server": SampleImageServerResource(
            enabled=settings.sample_server_enabled, root=settings.root, port=settings.sample_image_port,
            storage=storage,
        ),
        "dbt": dbt_cli(),
        "alert_webhook": alert_webhook(settings),
        "release_policy": ReleasePolicyResource(variants=EMBEDDED_VARIANTS)
        if settings.profile == "embedded"
        else ReleasePolicyResource(),
    }


def alert_webhook(settings: Settings) -> AlertWebhookResource:
    """The webhook URL stays an `EnvVar` (resolved at run time, shown by name only in the UI)."""
    return AlertWebhookResource(
        url=dg.EnvVar(ALERT_WEBHOOK_ENV) if settings.alert_webhook_set else "",
        ui_base_url=settings.ui_base_url,
    )


SHARD_AND_PUBLISH_ASSETS = [
    image_text_pairs,
    image_downloads,
    clip_scores,
    filtered_pairs,  # and its drop log, filtered_pairs_drop_log (one step, two assets)
    removal_list,
    laion_dbt_models,
    published_dataset,
    search_index,
    removal_receipts,
    crawl_progress,
]


PARTITIONS_HINT = (
    "\n\nPartitions: one per shard, `<crawl>/<shard>` (e.g. `CC-MAIN-2024-22/00042`). A fresh instance "
    "has none: materialize `crawl_manifest` (job `crawl_job`) or turn on the crawl discovery sensor, "
    "and the crawl's shards appear here. A key that is not registered is refused when the run starts."
)


def for_the_ui(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Descriptions render as markdown: tags like `<img alt>` are put in code spans, and every shard
    asset says where its partitions come from."""
    description = ui_text(spec.description or "")
    if isinstance(spec.partitions_def, dg.DynamicPartitionsDefinition) and PARTITIONS_HINT not in description:
        description += PARTITIONS_HINT
    return spec.replace_attributes(description=description)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The embedded profile adds `sample_crawl` upstream of `crawl_manifest`; production has none."""
    settings = settings or load_settings()
    sample = [sample_crawl] if settings.profile == "embedded" else []
    manifest = build_crawl_manifest(sample)
    return dg.Definitions(
        assets=dg.map_asset_specs(for_the_ui, [*sample, manifest, *SHARD_AND_PUBLISH_ASSETS]),
        jobs=JOBS,
        sensors=[crawl_discovery_sensor, failure_alerts, publish_automation, removal_requests_sensor],
        schedules=[build_shard_backfill_schedule(), crawl_progress_schedule],
        # Every job here is a chain of a few steps; one process per run (not per step) keeps a
        # UI-launched or backfilled shard near in-process speed. Shards run in parallel as runs.
        executor=dg.in_process_executor,
        resources=build_resources(settings),
    )


defs = build_definitions()
