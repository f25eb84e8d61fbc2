"""Crawl discovery: register each new crawl's manifest and shard partitions once.

Lists the crawls under a discovery root (Common Crawl's `s3://commoncrawl/crawl-data/` prefixes with
a `warc.paths.gz`, or the subdirectories of a local root), keeps those the filter allows (an explicit
list, or names newer than a given crawl: turning it on against the real bucket must not register 100
crawls), and for up to `discover_max_crawls_per_tick` new ones writes `manifests/<crawl>.parquet` and
adds their shard partitions. The cursor lists the crawls already registered, so each is registered once.
"""

import json

import dagster as dg

from laion_assets.core.crawl.manifest import crawl_source_uri, has_listing, list_crawls, list_source, make_shards, manifest_table
from laion_assets.core.storage.layout import manifest_path
from laion_assets.defs.crawl.assets import s3_client_for
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.lib.resources import StorageResource


@dg.sensor(
    name="crawl_discovery_sensor",
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers new crawls (manifest + shard partitions) found under the crawl source's "
    "discovery root, filtered by discover_only / discover_newer_than; each crawl once (cursor).",
)
def crawl_discovery_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, crawl_source: CrawlSourceResource
) -> dg.SensorResult | dg.SkipReason:
    root = crawl_source.discovery_root
    if not root:
        return dg.SkipReason("no discovery root: set LAION_CRAWL_DISCOVERY_ROOT (e.g. s3://commoncrawl/crawl-data/)")
    st = storage.get()
    client = s3_client_for(st, crawl_source, root)
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    candidates = [
        c for c in crawl_source.select(list_crawls(root, client)) if c not in seen and has_listing(root, c, client, crawl_source.discover_listing)
    ]
    todo = candidates[: crawl_source.discover_max_crawls_per_tick]
    if not todo:
        return dg.SkipReason(f"no new crawl under {root} ({len(seen)} registered)")
    keys: list[str] = []
    events = []
    for crawl in todo:
        source = crawl_source_uri(root, crawl, crawl_source.discover_listing)
        files = list_source(source, s3_client_for(st, crawl_source, source), label=crawl)
        if crawl_source.max_files > 0:
            files = files[: crawl_source.max_files]
        shards = make_shards(crawl, files, crawl_source.files_per_shard)
        path = st.write_parquet(manifest_table(shards), manifest_path(crawl))
        keys += [s.partition_key for s in shards]
        events.append(dg.AssetMaterialization(
            asset_key="crawl_manifest",
            description=f"{crawl} registered by crawl_discovery_sensor",
            metadata={"crawl": crawl, "source": source, "warc_files": len(files), "shards": len(shards),
                      "path": dg.MetadataValue.path(path)},
        ))
        context.log.info(f"{crawl}: {len(files)} files in {len(shards)} shards from {source}")
    return dg.SensorResult(
        dynamic_partitions_requests=[shard_partitions.build_add_request(keys)],
        asset_events=events,
        cursor=json.dumps(sorted(seen | set(todo))),
    )
