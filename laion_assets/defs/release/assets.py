"""`published_dataset`: every release variant of the published table, checked, versioned, diffed.

The work is `core/release/publish.py:publish_release` (plan every variant, check, commit all or
nothing); this asset passes its config and turns the result into check results and UI metadata.
"""

import dataclasses

import dagster as dg
from pydantic import Field

from laion_assets.core.release.checks import CHECKS
from laion_assets.core.release.files import DEFAULT_VARIANTS, ReleaseVariant
from laion_assets.core.release.checks import LossLimits
from laion_assets.core.release.publish import FullBuildNeeded, PublishOptions, ReleaseBlocked, publish_release
from laion_assets.core.download.health import release_download_failures
from laion_assets.core.schemas.release import RELEASE_SCHEMA
from laion_assets.core.storage.layout import release_dir
from laion_assets.defs.automation.schedules import PUBLISH_CONDITION
from laion_assets.defs.lib.checks import check_result, check_specs
from laion_assets.defs.lib.metadata import table_metadata
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.settings import load_settings
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.lib.validators import ranged


class ReleasePolicyResource(dg.ConfigurableResource):
    """The release variants a deployment publishes by default (production: Re-LAION's two cuts)."""

    variants: dict[str, float] = {v.name: v.punsafe_max for v in DEFAULT_VARIANTS}
    # Variant name -> SemDeDup min cosine (core/release/semantic.py); a variant not named: off.
    semantic_dedup: dict[str, float] = {}


# The embedded profile scores with the tiny shapes model, whose zero-shot punsafe is noise (it knows
# no unsafe concept): its first variant keeps every row so the sample's expected pairs hold; the
# second still shows a cut.
EMBEDDED_VARIANTS = {"sample": 1.0, "sample-safe": 0.45}


class PublishedDatasetRunConfig(dg.Config):
    rows_per_part: int = 1_000_000
    variants: dict[str, float] = Field(
        default={},
        description="Variant name -> punsafe cut-off (rows over it dropped as nsfw_policy); the first is "
        "the default. Empty: the `release_policy` resource's variants.",
    )
    semantic_dedup: dict[str, float] = Field(
        default={},
        description="Variant name -> min cosine similarity: semantic dedup (SemDeDup) drops rows whose image "
        "embedding is at least this close to a better-scored row of its cluster, as semantic_duplicate. "
        "Empty: the `release_policy` resource's; a variant not named: off.",
    )
    max_unexplained_drop_fraction: float = Field(
        default=0.05,
        description="Blocking: share of the previous version's rows that may vanish without a drop-log reason.",
    )

    max_removal_fraction: float = Field(
        default=0.01,
        description="Held (blocking): removal lists taking out more than this share of a variant's previous "
        "version (and more than removal_hold_min_rows rows), until each source is confirmed.",
    )
    max_lost_fraction: float = Field(
        default=0.2,
        description="Held (blocking): more than this share of the previous version lost for any reason "
        "(removals, failed downloads, dedup), until confirm_row_loss.",
    )
    removal_hold_min_rows: int = Field(default=10, description="Losses of at most this many rows are never held.")
    confirm_removal_sources: list[str] = Field(
        default=[], description="Removal sources whose (large) removals were checked and are intended.")
    confirm_row_loss: bool = Field(default=False, description="The large loss was checked and is intended.")
    diff_modes: dict[str, str] = Field(
        default={}, description="Removal source -> by_source | no_source | padded (default: padded for hash "
        "lists, by_source for URL/domain/prefix requests).")
    diff_pad: int = Field(default=9, description="Unchanged rows listed beside each removed row of a padded source.")
    incremental: bool = Field(
        default=True, description="Re-derive from the release index when only removal entries grew since the "
        "last publish (only the parts holding removed rows are rewritten); false: always the full build.")

    _check_rows_per_part = ranged("rows_per_part", 1, 100_000_000, integer=True)
    _check_drop_fraction = ranged("max_unexplained_drop_fraction", 0.0, 1.0)
    _check_removal_fraction = ranged("max_removal_fraction", 0.0, 1.0)
    _check_lost_fraction = ranged("max_lost_fraction", 0.0, 1.0)
    _check_hold_rows = ranged("removal_hold_min_rows", 0, 1 << 40, integer=True)
    _check_pad = ranged("diff_pad", 0, 1000, integer=True)

    def options(self) -> PublishOptions:
        return PublishOptions(
            rows_per_part=self.rows_per_part, max_unexplained_drop_fraction=self.max_unexplained_drop_fraction,
            limits=LossLimits(max_removal_fraction=self.max_removal_fraction, max_lost_fraction=self.max_lost_fraction,
                              min_rows_held=self.removal_hold_min_rows,
                              confirmed_sources=tuple(self.confirm_removal_sources),
                              confirm_row_loss=self.confirm_row_loss),
            diff_modes=dict(self.diff_modes), diff_pad=self.diff_pad, incremental=self.incremental)


CARD_CHECK = dg.AssetCheckSpec(
    "release_files_match_card", asset="published_dataset", blocking=True,
    description="Schema equals the documented one; checksums, row counts and the card's counts equal "
    "the table's; the funnel adds up row for row.",
)


@dg.asset(
    check_specs=[*check_specs("published_dataset", CHECKS), CARD_CHECK],
    automation_condition=PUBLISH_CONDITION,
    deps=[dg.AssetKey(k) for k in ("removal_list", "published_pairs", "drop_log", "dedup_stats", "stats_funnel")],
    group_name="publish",
    kinds={"parquet"},
    description="Release variants (NSFW policies) of the published table: LAION-compatible parquet "
    "parts, a dataset card (README.md, Hugging Face header) and manifest.json, under "
    "releases/<variant>/<version>/, with a diff against the variant's previous version.",
)
def published_dataset(
    context: dg.AssetExecutionContext,
    config: PublishedDatasetRunConfig,
    storage: StorageResource,
    release_policy: ReleasePolicyResource,
) -> dg.MaterializeResult:
    st = storage.get()
    cuts = config.variants or release_policy.variants
    semdedup = config.semantic_dedup or release_policy.semantic_dedup
    unknown = sorted(set(semdedup) - set(cuts))
    if unknown:
        raise dg.Failure(f"semantic_dedup names variants that are not published: {unknown} (variants: {sorted(cuts)})")
    variants = [ReleaseVariant(name, cut, semdedup.get(name)) for name, cut in cuts.items()]
    if not variants:
        raise dg.Failure("variants: at least one release variant is needed")
    try:
        # An outage is named, never published: shards whose downloads failed at the ERROR level.
        outage = release_download_failures(st, context.instance.get_dynamic_partitions(shard_partitions.name),
                                          dict(load_settings().download_health))
        # A warehouse built on an older removal list (a takedown_job run builds no dbt model) may
        # serve the incremental path only: its full build would read stale drops.
        from laion_assets.defs.removal.fast_path import FULL_BUILD_TAG, derived_from, warehouse_behind

        options = dataclasses.replace(config.options(), derived_from=derived_from(),
                                      full_build_refused=warehouse_behind(context.instance))
        result = publish_release(st, variants, options, log=context.log.info, extra_failures=outage)
    except ReleaseBlocked as blocked:
        raise dg.Failure(str(blocked)) from None
    except FullBuildNeeded as needed:
        # Expected on the removal-only path: the caller falls back to publish_job (not alerted).
        context.instance.add_run_tags(context.run_id, {FULL_BUILD_TAG: "true"})
        raise dg.Failure(str(needed), metadata={"full_build_needed": needed.why, "refused": needed.refused}) from None
    first, version, facts = result.default_variant, result.version, result.facts
    release_uri = st.uri(release_dir(first, version))
    return dg.MaterializeResult(
        # The checks ran on exactly the rows now published (the card check verifies the files
        # against them: checksums, schema, counts), so their outcomes are the asset's results.
        check_results=[*(check_result(c, o, None) for c, o in zip(CHECKS, result.outcomes)),
                       # verify_release_dir ran on the staged directory, before its commit.
                       dg.AssetCheckResult(check_name=CARD_CHECK.name, passed=not result.card_problems,
                                           severity=dg.AssetCheckSeverity.ERROR,
                                           metadata={"problems": dg.MetadataValue.json(result.card_problems)})],
        metadata={
            **table_metadata(RELEASE_SCHEMA.empty_table(), release_uri),
            "dagster/row_count": result.variants[first]["rows"],
            "version": version,
            "variant": first,
            "rows": result.variants[first]["rows"],
            "path": dg.MetadataValue.path(release_uri),
            "variants": dg.MetadataValue.json(result.variants),
            "dataset_card": dg.MetadataValue.md(st.read_bytes(f"{release_dir(first, version)}/README.md").decode()),
            "pairs_extracted": facts["pairs_extracted"],
            "rows_removed_by_removal_lists": facts["removal"]["rows_removed"],
            "drops_by_reason": dg.MetadataValue.json(facts["drops"]),
            "purged_shards": dg.MetadataValue.json(result.purged),
            "rederive": result.mode,  # full | incremental (core/release/incremental.py)
            "rederive_reason": result.mode_reason,
        },
    )
