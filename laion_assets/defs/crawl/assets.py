"""`crawl_manifest`: the crawl's WARC files, grouped into shards, one dynamic partition each."""

import dagster as dg
import pyarrow as pa

from laion_assets.core.crawl import CHECKS, MANIFEST_SCHEMA, list_local_warcs, make_shards, manifest_path, manifest_table
from laion_assets.defs.checks import build_sql_checks
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import CrawlSourceResource, StorageResource
from laion_assets.defs.config_checks import ranged


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="default") if tables else MANIFEST_SCHEMA.empty_table()


class CrawlManifestConfig(dg.Config):
    """Per-run overrides of the `crawl_source` resource (unset: use the resource's)."""

    crawl: str | None = None
    source_dir: str | None = None
    files_per_shard: int | None = None

    _check_files_per_shard = ranged("files_per_shard", 1, 100_000, integer=True)


def build_crawl_manifest(
    upstream: list[dg.AssetsDefinition],
) -> tuple[dg.AssetsDefinition, list[dg.AssetChecksDefinition]]:
    """The manifest asset; in the embedded default it lists the sample crawl, so it follows it."""

    @dg.asset(
        deps=upstream,
        group_name="crawl",
        kinds={"python", "parquet"},
        description="Which WARC files the crawl has, in shards of K files; registers one `shards` "
        "partition per shard.",
    )
    def crawl_manifest(
        context: dg.AssetExecutionContext,
        config: CrawlManifestConfig,
        storage: StorageResource,
        crawl_source: CrawlSourceResource,
    ) -> dg.MaterializeResult:
        crawl = config.crawl or crawl_source.crawl
        source_dir = config.source_dir or crawl_source.source_dir
        files_per_shard = config.files_per_shard or crawl_source.files_per_shard
        if not crawl or not source_dir:
            raise dg.Failure(
                "crawl_manifest needs a crawl name and a source directory "
                "(LAION_CRAWL and LAION_CRAWL_SOURCE, or the asset's config)"
            )
        st = storage.get()
        if source_dir.startswith(st.root_uri.rstrip("/") + "/"):  # inside the root: resolve committed dirs
            source_dir = st.uri(st.resolve(source_dir[len(st.root_uri.rstrip("/")) + 1 :]))
        uris = list_local_warcs(source_dir)
        shards = make_shards(crawl, uris, files_per_shard)
        path = st.write_parquet(manifest_table(shards), manifest_path(crawl))
        keys = [s.partition_key for s in shards]
        known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
        new = [k for k in keys if k not in known]
        if new:
            context.instance.add_dynamic_partitions(shard_partitions.name, new)
        context.log.info(f"{crawl}: {len(uris)} WARC files in {len(shards)} shards ({len(new)} new)")
        return dg.MaterializeResult(
            metadata={
                "crawl": crawl,
                "warc_files": len(uris),
                "shards": len(shards),
                "new_partitions": len(new),
                "partition_keys": dg.MetadataValue.json(keys[:50]),
                "path": dg.MetadataValue.path(path),
            }
        )

    checks = build_sql_checks(
        crawl_manifest,
        CHECKS,
        lambda st, pk: {"manifest": _concat([st.read_parquet(p) for p in st.list("manifests", ".parquet")])},
    )
    return crawl_manifest, checks
