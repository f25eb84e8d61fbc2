"""`filtered_pairs`: the shard's pairs that are downloaded, scored over threshold and not opted out,
plus the shard's drop log (every other pair, with its reason)."""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from laion_assets.core.filter.checks import CHECKS
from laion_assets.core.filter.shard import FilterConfig, filter_shard
from laion_assets.core.clip.nsfw_head import load_nsfw_head
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.defs.lib.checks import stage_checks
from laion_assets.defs.clip.assets import clip_scores
from laion_assets.defs.lib.metadata import (
    TRANSIENT_RETRY,
    drop_reasons,
    require_registered_partition,
    stats_metadata,
    table_metadata,
)
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.lib.validators import ranged


class FilteredPairsRunConfig(dg.Config):
    min_similarity: float | None = Field(
        default=None, description="Overrides every row's model/language threshold."
    )
    drop_nsfw_over: float | None = Field(
        default=None,
        description="Shard-level punsafe cut (off: each release variant applies its own).",
    )
    nsfw_head_path: str | None = Field(
        default=None, description="Checkpoint of a trained NSFW head on CLIP image embeddings; "
        "replaces the zero-shot punsafe (see docs/safety.md).",
    )

    _check_min_similarity = ranged("min_similarity", -1.0, 1.0)  # a cosine similarity
    _check_drop_nsfw_over = ranged("drop_nsfw_over", 0.0, 1.0)  # a probability


def _views(st, pk):
    paths = ShardPaths.from_partition_key(pk)
    return {
        "filtered": st.read_parquet(paths.filtered),
        "drops": st.read_parquet(paths.drops),
        "pairs": st.read_parquet(paths.pairs),
    }


filtered_pairs_checks = stage_checks("filtered_pairs", CHECKS, _views, partitions_def=shard_partitions)


# The drop logs are written by `filtered_pairs` in the same step as the kept pairs; dbt reads them as
# their own source (`shard_drops`). They are a second output of the step, materialized per shard with
# the kept pairs: as a never-materialized `AssetSpec` they stayed "missing" and never "updated", so
# declarative automation (eager) never requested `stg_shard_drops` and publish waited forever.
DROP_LOG = "filtered_pairs_drop_log"


@dg.multi_asset(
    name="filtered_pairs",
    specs=[
        dg.AssetSpec(
            "filtered_pairs",
            deps=[clip_scores],
            partitions_def=shard_partitions,
            group_name="filter",
            kinds={"duckdb", "parquet"},
            description="Pairs kept for publishing: image downloaded, CLIP similarity at or over the "
            "threshold of the caption's language (or `min_similarity`), no opt-out. Every other pair goes "
            "to the shard's drop log (`<crawl>/drops/<shard>.parquet`) with its reason.",
        ),
        dg.AssetSpec(
            DROP_LOG,
            deps=["filtered_pairs"],
            partitions_def=shard_partitions,
            group_name="filter",
            kinds={"parquet"},
            description="Every shard's drop log, `<crawl>/drops/<shard>.parquet`: the pairs `filtered_pairs` "
            "did not keep, one reason each. Written by `filtered_pairs` in the same step as its kept pairs "
            "(materialized with it, never on its own).",
        ),
    ],
    check_specs=filtered_pairs_checks.specs,
    retry_policy=TRANSIENT_RETRY,
)
def filtered_pairs(
    context: dg.AssetExecutionContext, config: FilteredPairsRunConfig, storage: StorageResource
) -> Iterator[dg.MaterializeResult]:
    require_registered_partition(context)
    st = storage.get()
    paths = ShardPaths.from_partition_key(context.partition_key)
    head = load_nsfw_head(config.nsfw_head_path) if config.nsfw_head_path else None
    result = filter_shard(
        st.read_parquet(paths.pairs),
        st.read_parquet(paths.downloads),
        st.read_parquet(paths.scores),
        shard=paths.shard,
        config=FilterConfig(
            min_similarity=config.min_similarity, drop_nsfw_over=config.drop_nsfw_over, nsfw_head=head
        ),
        embeddings_dir=st.local_dir(paths.embeddings_dir) if head else None,
    )
    # Drop log first: a crash between the two writes leaves the old kept table, never kept rows
    # without their drop log.
    drops_out = st.write_parquet(result.drops, paths.drops)
    out = st.write_parquet(result.table, paths.filtered)
    context.log.info(f"{context.partition_key}: kept {result.table.num_rows}/{result.stats['pairs_in']}")
    yield dg.MaterializeResult(
        asset_key="filtered_pairs",
        check_results=filtered_pairs_checks.evaluate(st, context.partition_key),
        metadata={
            "rows": result.table.num_rows,
            "dropped": result.drops.num_rows,
            "path": dg.MetadataValue.path(out),
            "nsfw_scorer": head.head_id if head else "zero_shot",
            **stats_metadata(result.stats),
            **table_metadata(result.table, out),
            **drop_reasons(result.stats),
        }
    )
    yield dg.MaterializeResult(asset_key=DROP_LOG, metadata={
        "rows": result.drops.num_rows, "path": dg.MetadataValue.path(drops_out),
        **drop_reasons(result.stats),
    })
