"""`crawl_manifest`: the crawl's WARC files, grouped into shards, one dynamic partition each."""

from __future__ import annotations

import dagster as dg

from laion_assets.core.crawl import CHECKS, list_local_warcs, make_shards, manifest_path, manifest_table
from laion_assets.defs.checks import build_sql_checks
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import StorageResource
from laion_assets.settings import load_settings

_settings = load_settings()


class CrawlManifestConfig(dg.Config):
    crawl: str = _settings.crawl
    source_dir: str = _settings.crawl_source
    files_per_shard: int = _settings.files_per_shard


@dg.asset(
    group_name="crawl",
    kinds={"python", "parquet"},
    description="Which WARC files the crawl has, in shards of K files; registers one `shards` "
    "partition per shard.",
)
def crawl_manifest(
    context: dg.AssetExecutionContext, config: CrawlManifestConfig, storage: StorageResource
) -> dg.MaterializeResult:
    if not config.crawl or not config.source_dir:
        raise dg.Failure("crawl_manifest needs `crawl` and `source_dir` (or LAION_CRAWL and LAION_CRAWL_SOURCE)")
    uris = list_local_warcs(config.source_dir)
    shards = make_shards(config.crawl, uris, config.files_per_shard)
    path = storage.get().write_parquet(manifest_table(shards), manifest_path(config.crawl))
    keys = [s.partition_key for s in shards]
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    new = [k for k in keys if k not in known]
    if new:
        context.instance.add_dynamic_partitions(shard_partitions.name, new)
    context.log.info(f"{config.crawl}: {len(uris)} WARC files in {len(shards)} shards ({len(new)} new)")
    return dg.MaterializeResult(
        metadata={
            "crawl": config.crawl,
            "warc_files": len(uris),
            "shards": len(shards),
            "new_partitions": len(new),
            "partition_keys": dg.MetadataValue.json(keys[:50]),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


crawl_manifest_checks = build_sql_checks(
    crawl_manifest,
    CHECKS,
    lambda st, pk: {"manifest": sorted(str(p) for p in st.path("manifests").glob("*.parquet"))},
    params=lambda st, pk: {"files_per_shard": CrawlManifestConfig().files_per_shard},
)
