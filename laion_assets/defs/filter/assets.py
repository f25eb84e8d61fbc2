"""`filtered_pairs`: the shard's pairs that are downloaded, scored over threshold and not opted out."""

import dagster as dg

from laion_assets.core.filter import CHECKS, FilterConfig, filter_shard
from laion_assets.core.storage import ShardPaths
from laion_assets.defs.checks import stage_checks
from laion_assets.defs.clip.assets import clip_scores
from laion_assets.defs.common import TRANSIENT_RETRY, drop_reasons, require_registered_partition, stats_metadata, table_metadata
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import StorageResource
from laion_assets.defs.config_checks import ranged


class FilteredPairsConfig(dg.Config):
    min_similarity: float | None = None
    drop_nsfw: bool = False

    _check_min_similarity = ranged("min_similarity", -1.0, 1.0)  # a cosine similarity


filtered_pairs_checks = stage_checks(
    "filtered_pairs", CHECKS, lambda st, pk: {"filtered": st.read_parquet(ShardPaths.from_partition_key(pk).filtered)}
)


@dg.asset(
    check_specs=filtered_pairs_checks.specs,
    retry_policy=TRANSIENT_RETRY,
    deps=[clip_scores],
    partitions_def=shard_partitions,
    group_name="filter",
    kinds={"duckdb", "parquet"},
    description="Pairs kept for publishing: image downloaded, CLIP similarity at or over the "
    "threshold of the caption's language (or `min_similarity`), no page-level opt-out.",
)
def filtered_pairs(
    context: dg.AssetExecutionContext, config: FilteredPairsConfig, storage: StorageResource
) -> dg.MaterializeResult:
    require_registered_partition(context)
    st = storage.get()
    paths = ShardPaths.from_partition_key(context.partition_key)
    result = filter_shard(
        st.read_parquet(paths.pairs),
        st.read_parquet(paths.downloads),
        st.read_parquet(paths.scores),
        shard=paths.shard,
        config=FilterConfig(min_similarity=config.min_similarity, drop_nsfw=config.drop_nsfw),
    )
    out = st.write_parquet(result.table, paths.filtered)
    context.log.info(f"{context.partition_key}: kept {result.table.num_rows}/{result.stats['pairs_in']}")
    return dg.MaterializeResult(
        check_results=filtered_pairs_checks.evaluate(st, context.partition_key),
        metadata={"rows": result.table.num_rows, "path": dg.MetadataValue.path(out), **stats_metadata(result.stats),
                  **table_metadata(result.table, out), **drop_reasons(result.stats)}
    )
