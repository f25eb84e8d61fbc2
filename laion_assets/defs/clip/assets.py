"""`clip_scores`: image and text embeddings and their cosine similarity, in the `gpu` pool."""

import json

import dagster as dg

from laion_assets.core.clip.checks import CHECKS
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.defs.lib.checks import stage_checks
from laion_assets.defs.lib.metadata import TRANSIENT_RETRY, progress_logger, require_registered_partition, similarity_histogram, stats_metadata, table_metadata
from laion_assets.defs.download.assets import image_downloads
from laion_assets.defs.extract.assets import image_text_pairs
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.clip.resources import ClipModelResource
from laion_assets.defs.lib.resources import StorageResource

# Tags a container launcher reads to put this step on a GPU node: the K8s executor/run launcher
# (`dagster-k8s/config`) and dagster-aws's ECS executor (`ecs/container_overrides`). The same tags go
# on `clip_job` runs, for run launchers that start one container per run.
GPU_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {"node_selector": {"laion-assets/accelerator": "gpu"}},
    },
    "ecs/container_overrides": json.dumps({"resourceRequirements": [{"type": "GPU", "value": "1"}]}),
}


def _views(st, pk):
    from laion_assets.core.clip import embedding_table  # torch: only in the step that checks

    p = ShardPaths.from_partition_key(pk)
    return {
        "downloads": st.read_parquet(p.downloads),
        "scores": st.read_parquet(p.scores),
        "embeddings": embedding_table(st.local_dir(p.embeddings_dir)),
    }


clip_scores_checks = stage_checks("clip_scores", CHECKS, _views, partitions_def=shard_partitions)


@dg.asset(
    check_specs=clip_scores_checks.specs,
    retry_policy=TRANSIENT_RETRY,
    deps=[image_downloads, image_text_pairs],
    partitions_def=shard_partitions,
    pool="gpu",
    op_tags=GPU_TAGS,
    group_name="clip",
    kinds={"pytorch", "parquet"},
    description="CLIP cosine similarity per downloaded pair, with float16 image/text embeddings "
    "kept for NSFW scoring, dedup and search. Runs in the `gpu` concurrency pool.",
)
def clip_scores(
    context: dg.AssetExecutionContext, storage: StorageResource, clip_model: ClipModelResource
) -> dg.MaterializeResult:
    require_registered_partition(context)
    st = storage.get()
    paths = ShardPaths.from_partition_key(context.partition_key)
    scorer = clip_model.scorer()
    # The scores table is the commit record of the embeddings: both become visible in one step.
    with st.staging_dir(paths.embeddings_dir, record=paths.scores) as out_dir:
        result = scorer.score_shard(
            st.local_dir(paths.images_dir),
            st.read_parquet(paths.downloads),
            st.read_parquet(paths.pairs),
            out_dir,
            progress=progress_logger(context, "pairs scored"),
        )
        out = st.write_parquet(result.table, paths.scores)
    context.log.info(f"{context.partition_key}: scored {result.table.num_rows} pairs")
    return dg.MaterializeResult(
        check_results=clip_scores_checks.evaluate(st, context.partition_key),
        metadata={
            "rows": result.table.num_rows,
            "path": dg.MetadataValue.path(out),
            **stats_metadata(result.stats), **table_metadata(result.table, out),
            "similarity_histogram": similarity_histogram(result.table.column("similarity").to_pylist()), "model_id": scorer.model_id,
        }
    )
