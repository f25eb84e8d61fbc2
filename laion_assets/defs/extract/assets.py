"""`image_text_pairs`: every <img> with alt text in a shard's WARC files, with provenance."""

import dagster as dg

from laion_assets.core.storage.layout import manifest_path
from laion_assets.core.crawl.manifest import shard_files
from laion_assets.core.extract import ExtractConfig, TooManyBadRecords, extract_shard, stats_table
from laion_assets.core.extract.checks import CHECKS
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.defs.lib.checks import stage_checks
from laion_assets.defs.lib.metadata import DETERMINISTIC_ERRORS, TRANSIENT_RETRY, deterministic_failure, drop_reasons, progress_logger, require_registered_partition, stats_metadata, table_metadata
from laion_assets.defs.lib.partition_keys import require_shard_in_manifest
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.lib.validators import ranged
from laion_assets.defs.crawl.assets import crawl_file_opener
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.lib.resources import StorageResource


class ImageTextPairsRunConfig(dg.Config):
    """`input_format`: "warc", "wat" (Common Crawl's link metadata, no HTML parsing), or "auto"
    (WAT when every file of the shard is a .wat/.wat.gz, WARC otherwise). `main_content_signals`:
    trafilatura on the pages that yield pairs (in_main_content, main_title, site_name; WARC only)."""

    input_format: str = "auto"
    max_bad_record_ratio: float = ExtractConfig.max_bad_record_ratio
    main_content_signals: bool = ExtractConfig.main_content_signals

    _check_ratio = ranged("max_bad_record_ratio", 0.0, 1.0)



def _views(st, pk):
    p = ShardPaths.from_partition_key(pk)
    return {
        "pairs": st.read_parquet(p.pairs),
        "pair_errors": st.read_parquet(p.pair_errors),
        "pair_stats": st.read_parquet(p.pair_stats),
    }


image_text_pairs_checks = stage_checks("image_text_pairs", CHECKS, _views, partitions_def=shard_partitions)


@dg.asset(
    check_specs=image_text_pairs_checks.specs,
    retry_policy=TRANSIENT_RETRY,
    deps=["crawl_manifest"],
    partitions_def=shard_partitions,
    group_name="extract",
    kinds={"python", "parquet"},
    description="Image-caption pairs from the shard's WARC (or WAT) files, one row per <img alt>, "
    "each traceable to its WARC record.",
)
def image_text_pairs(
    context: dg.AssetExecutionContext,
    config: ImageTextPairsRunConfig,
    storage: StorageResource,
    crawl_source: CrawlSourceResource,
) -> dg.MaterializeResult:
    require_registered_partition(context)
    st = storage.get()
    require_shard_in_manifest(context, st)
    paths = ShardPaths.from_partition_key(context.partition_key)
    files = shard_files(st.read_parquet(manifest_path(paths.crawl)), paths.shard)
    # Extraction gets the crawl's own paths (provenance) and streams each from where this build reads it.
    uris, uri_of, open_crawl_file = [f.path for f in files], {f.path: f.uri for f in files}, crawl_file_opener(st, crawl_source)
    input_format = config.input_format
    if input_format == "auto":
        input_format = "wat" if all(u.endswith((".wat", ".wat.gz")) for u in uris) else "warc"
    try:
        result = extract_shard(
            uris,
            crawl=paths.crawl,
            config=ExtractConfig(
                input_format=input_format, max_bad_record_ratio=config.max_bad_record_ratio,
                main_content_signals=config.main_content_signals,
            ),
            open_fn=lambda path: open_crawl_file(uri_of[path]),
            progress=progress_logger(context, "pages extracted"),
        )
    except DETERMINISTIC_ERRORS as exc:  # a missing WARC file: fail now, naming it, no 3 retries
        raise deterministic_failure(context.partition_key, exc) from exc
    except TooManyBadRecords as exc:
        # Record what was wrong for inspection; publish no pairs for a shard this damaged.
        if exc.result is not None:
            st.write_parquet(exc.result.errors, paths.pair_errors)
            st.write_parquet(stats_table(exc.result.stats), paths.pair_stats)
            reasons = exc.result.errors.column("reason").value_counts().to_pylist()
        else:
            reasons = []
        raise dg.Failure(
            allow_retries=False,  # the same bytes fail the same way: no retry
            description=f"{context.partition_key}: {exc}",
            metadata={
                "bad_records_by_reason": dg.MetadataValue.json({r["values"]: r["counts"] for r in reasons}),
                "errors_path": dg.MetadataValue.path(st.uri(paths.pair_errors)),
            },
        ) from exc
    st.write_parquet(result.errors, paths.pair_errors)
    st.write_parquet(stats_table(result.stats), paths.pair_stats)
    out = st.write_parquet(result.table, paths.pairs)
    context.log.info(
        f"{context.partition_key}: {result.stats.get('html_pages', 0)} pages -> "
        f"{result.table.num_rows} pairs, {result.errors.num_rows} bad records"
    )
    return dg.MaterializeResult(
        check_results=image_text_pairs_checks.evaluate(st, context.partition_key),
        metadata={
            "rows": result.table.num_rows,
            "warc_files": len(uris),
            "input_format": input_format,
            "path": dg.MetadataValue.path(out),
            **stats_metadata(result.stats), **table_metadata(result.table, out), **drop_reasons(result.stats),
        }
    )
