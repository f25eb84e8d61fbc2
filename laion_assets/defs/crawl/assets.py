"""`crawl_manifest`: the crawl's WARC files, grouped into shards, one dynamic partition each."""

from collections.abc import Callable
from typing import Any, BinaryIO

import dagster as dg
import pyarrow as pa

from laion_assets.core.crawl.checks import CHECKS
from laion_assets.core.crawl.manifest import MANIFEST_SCHEMA, list_source, make_shards, manifest_table, crawl_client, crawl_opener
from laion_assets.core.storage.layout import manifest_path
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import MANIFESTS_DIR
from laion_assets.core.lib.validation import require_int_range
from laion_assets.defs.lib.checks import stage_checks
from laion_assets.defs.lib.metadata import table_metadata
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.lib.validators import ranged


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="default") if tables else MANIFEST_SCHEMA.empty_table()


def s3_client_for(st: Storage, crawl_source: CrawlSourceResource, uri: str) -> Any:
    """The client a crawl URI needs: the storage's own for its bucket, else the crawl source's
    (anonymous for Common Crawl); None for URIs that need none."""
    return crawl_client(uri, st.client_for, crawl_source.s3_client)


def crawl_file_opener(st: Storage, crawl_source: CrawlSourceResource) -> Callable[[str], BinaryIO]:
    """`uri -> stream` for extraction: local files, s3:// objects and https:// URLs, read as streams."""
    return crawl_opener(st.client_for, crawl_source.s3_client)


def resolve_source(st: Storage, source: str) -> tuple[str, str | None]:
    """A source inside the storage root is resolved through committed directories; its provenance
    label is its logical path there (e.g. `sample-crawl/warc`)."""
    root = st.root_uri.rstrip("/") + "/"
    if source.startswith(root):
        logical = source[len(root) :].strip("/")
        return st.uri(st.resolve(logical)), logical
    return source, None


class CrawlManifestConfig(dg.Config):
    """Per-run overrides of the `crawl_source` resource (unset: use the resource's)."""

    crawl: str | None = None
    source_dir: str | None = None
    files_per_shard: int | None = None
    max_files: int | None = None

    _check_files_per_shard = ranged("files_per_shard", 1, 100_000, integer=True)


crawl_manifest_checks = stage_checks(
    "crawl_manifest",
    CHECKS,
    lambda st, pk: {"manifest": _concat([st.read_parquet(p) for p in st.list(MANIFESTS_DIR, ".parquet")])},
)


def build_crawl_manifest(upstream: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The manifest asset; in the embedded default it lists the sample crawl, so it follows it."""

    @dg.asset(
        check_specs=crawl_manifest_checks.specs,
        deps=upstream,
        group_name="crawl",
        kinds={"python", "parquet"},
        description="Which WARC files the crawl has (a local directory, an s3:// prefix, or Common "
        "Crawl's warc.paths.gz), in shards of K files; registers one `shards` partition per shard.",
    )
    def crawl_manifest(
        context: dg.AssetExecutionContext,
        config: CrawlManifestConfig,
        storage: StorageResource,
        crawl_source: CrawlSourceResource,
    ) -> dg.MaterializeResult:
        for name, lo in (("files_per_shard", 1), ("max_files", 0)):
            if getattr(config, name) is not None:
                require_int_range(f"crawl_manifest.{name}", getattr(config, name), lo)
        crawl = config.crawl or crawl_source.crawl
        source_dir = config.source_dir or crawl_source.source_dir
        files_per_shard = config.files_per_shard or crawl_source.files_per_shard
        max_files = config.max_files if config.max_files is not None else crawl_source.max_files
        if not crawl or not source_dir:
            raise dg.Failure(
                "crawl_manifest needs a crawl name and a source directory "
                "(LAION_CRAWL and LAION_CRAWL_SOURCE, or the asset's config)"
            )
        st = storage.get()
        source, label = resolve_source(st, source_dir)
        files = list_source(source, s3_client_for(st, crawl_source, source), label=label or crawl)
        if max_files > 0:
            files = files[:max_files]
        shards = make_shards(crawl, files, files_per_shard)
        manifest = manifest_table(shards)
        path = st.write_parquet(manifest, manifest_path(crawl))
        keys = [s.partition_key for s in shards]
        known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
        new = [k for k in keys if k not in known]
        if new:
            context.instance.add_dynamic_partitions(shard_partitions.name, new)
        context.log.info(f"{crawl}: {len(files)} WARC files in {len(shards)} shards ({len(new)} new)")
        return dg.MaterializeResult(
            check_results=crawl_manifest_checks.evaluate(st),
            metadata={
                "crawl": crawl,
                "source": source_dir,
                "warc_files": len(files),
                "shards": len(shards),
                "new_partitions": len(new),
                "partition_keys": dg.MetadataValue.json(keys[:50]),
                "path": dg.MetadataValue.path(path), **table_metadata(manifest, path),
            }
        )

    return crawl_manifest
