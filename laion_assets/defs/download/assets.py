"""`image_downloads`: fetched, resized images in WebDataset tars plus one status row per URL."""

import dagster as dg

from laion_assets.core.download import list_tar_members
from laion_assets.core.download.blocklist import download_shard_unless_removed, read_removal_entries
from laion_assets.core.download.checks import CHECKS
from laion_assets.core.download.health import HEALTH_CHECKS
from laion_assets.settings import load_settings
from laion_assets.core.storage.layout import REMOVAL_ENTRIES, ShardPaths
from laion_assets.defs.lib.checks import stage_checks
from laion_assets.defs.lib.metadata import TRANSIENT_RETRY, progress_logger, require_registered_partition, stats_metadata, table_metadata, value_counts
from laion_assets.defs.extract.assets import image_text_pairs
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.download.resources import DownloaderResource
from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets.defs.lib.resources import StorageResource


class ImageDownloadsRunConfig(dg.Config):
    retry_failed_only: bool = True


def _views(st, pk):
    p = ShardPaths.from_partition_key(pk)
    return {
        "pairs": st.read_parquet(p.pairs),
        "downloads": st.read_parquet(p.downloads),
        "tar_members": list_tar_members(st.local_dir(p.images_dir)),
    }


image_downloads_checks = stage_checks("image_downloads", CHECKS + HEALTH_CHECKS, _views,
                                      params=lambda st, pk: dict(load_settings().download_health),
                                      partitions_def=shard_partitions)


@dg.asset(
    check_specs=image_downloads_checks.specs,
    retry_policy=TRANSIENT_RETRY,
    deps=[image_text_pairs],
    partitions_def=shard_partitions,
    group_name="download",
    kinds={"python", "webdataset", "parquet"},
    description="Images fetched politely (opt-outs, robots.txt, TDMRep honoured), resized and "
    "written as WebDataset tars; a status parquet has one row per input URL.",
)
def image_downloads(
    context: dg.AssetExecutionContext,
    config: ImageDownloadsRunConfig,
    storage: StorageResource,
    downloader: DownloaderResource,
    sample_image_server: SampleImageServerResource,
) -> dg.MaterializeResult:
    require_registered_partition(context)
    sample_image_server.require_served()  # the sample's images on their port, else fail now (not 0 of N)
    st = storage.get()
    paths = ShardPaths.from_partition_key(context.partition_key)
    pairs = st.read_parquet(paths.pairs)
    previous_status = previous_dir = None
    if config.retry_failed_only and st.exists(paths.downloads) and st.live_version(paths.images_dir) is not None:
        previous_status, previous_dir = st.read_parquet(paths.downloads), st.local_dir(paths.images_dir)
    # The status table is the commit record of the images: both become visible in one step.
    with st.staging_dir(paths.images_dir, record=paths.downloads) as out_dir:
        result = download_shard_unless_removed(  # rows a removal entry names are never fetched
            pairs,
            out_dir,
            entries=read_removal_entries(st, REMOVAL_ENTRIES),
            history=st.read_parquet(paths.downloads) if st.exists(paths.downloads) else None,
            config=downloader.config(),
            previous_status=previous_status,
            previous_dir=previous_dir,
            progress=progress_logger(context, "images fetched"),
            shard=paths.shard,
        )
        status_path = st.write_parquet(result.status, paths.downloads)
    ok = sum(1 for s in result.status.column("status").to_pylist() if s == "ok")
    context.log.info(f"{context.partition_key}: {ok}/{pairs.num_rows} images ok")
    return dg.MaterializeResult(
        check_results=image_downloads_checks.evaluate(st, context.partition_key),
        metadata={
            "rows": result.status.num_rows,
            "ok": ok,
            "tars": len(result.tar_paths),
            "status_path": dg.MetadataValue.path(status_path),
            "images_uri": dg.MetadataValue.path(st.dir_uri(paths.images_dir)),
            **stats_metadata(result.stats), **table_metadata(result.status, status_path),
            "status_by_reason": value_counts(result.status, "status", "reason"),
        }
    )
