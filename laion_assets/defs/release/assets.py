"""`published_dataset`: every release variant of the published table, checked, versioned, diffed.

Layout: `releases/<variant>/<version>/` (parts, README.md, manifest.json), `releases/<variant>/LATEST`,
`releases/<variant>/diffs/<old>__<new>.parquet` (+ .json), and `releases/LATEST` naming
`<variant>/<version>` of the first (default) variant. Every variant is built and checked before any
is published: a failing blocking check publishes nothing.
"""

import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow as pa
from pydantic import Field

from laion_assets.core.release import (
    CHECKS,
    DEFAULT_VARIANTS,
    ReleaseVariant,
    build_facts,
    release_diff,
    row_count_verdict,
    verify_release_dir,
    write_release_files,
)
from laion_assets.core.download.health import release_download_failures
from laion_assets.core.release_writer import ReleaseRows, release_version
from laion_assets.core.schemas.release import RELEASE_SCHEMA
from laion_assets.defs.automation.schedules import PUBLISH_CONDITION
from laion_assets.defs.checks import check_result, check_specs
from laion_assets.defs.common import table_metadata
from laion_assets.defs.removal.assets import ENTRIES
from laion_assets.defs.resources import StorageResource
from laion_assets.defs.config_checks import ranged

LATEST = "releases/LATEST"
WAREHOUSE = "warehouse.duckdb"
_REASONS = pa.schema([("sample_id", pa.int64()), ("reason", pa.string())])


class ReleasePolicyResource(dg.ConfigurableResource):
    """The release variants a deployment publishes by default (production: Re-LAION's two cuts)."""

    variants: dict[str, float] = {v.name: v.punsafe_max for v in DEFAULT_VARIANTS}


# The embedded profile scores with the tiny shapes model, whose zero-shot punsafe is noise (it knows
# no unsafe concept): its first variant keeps every row so the sample's expected pairs hold; the
# second still shows a cut.
EMBEDDED_VARIANTS = {"sample": 1.0, "sample-safe": 0.45}


class ReleaseConfig(dg.Config):
    rows_per_part: int = 1_000_000
    variants: dict[str, float] = Field(
        default={},
        description="Variant name -> punsafe cut-off (rows over it dropped as nsfw_policy); the first is "
        "the default. Empty: the `release_policy` resource's variants.",
    )
    max_unexplained_drop_fraction: float = Field(
        default=0.05,
        description="Blocking: share of the previous version's rows that may vanish without a drop-log reason.",
    )

    _check_rows_per_part = ranged("rows_per_part", 1, 100_000_000, integer=True)
    _check_drop_fraction = ranged("max_unexplained_drop_fraction", 0.0, 1.0)


def _latest(st, variant: str) -> str | None:
    relpath = f"releases/{variant}/LATEST"
    return st.read_bytes(relpath).decode().strip() if st.exists(relpath) else None


def _read_parts(st, release: str) -> pa.Table:
    """Every part of `releases/<variant>/<version>` as one table (local or S3)."""
    parts = [p for p in st.list(f"releases/{release}", ".parquet") if p.rsplit("/", 1)[-1].startswith("part-")]
    return st.read_parquet_many(parts)


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
    config: ReleaseConfig,
    storage: StorageResource,
    release_policy: ReleasePolicyResource,
) -> dg.MaterializeResult:
    st = storage.get()
    variants = [ReleaseVariant(name, cut) for name, cut in (config.variants or release_policy.variants).items()]
    if not variants:
        raise dg.Failure("variants: at least one release variant is needed")
    entries = st.read_parquet(ENTRIES)
    scratch = Path(tempfile.mkdtemp(prefix="laion-release-"))
    try:
        with ReleaseRows.from_warehouse(st.local_file(WAREHOUSE), register=st.register_duckdb,
                                        temp_dir=scratch / "spill") as rows:
            facts = build_facts(rows.con, entries, published=rows.count())
            reasons_release = rows.con.sql("SELECT sample_id, reason FROM wh.drop_log").to_arrow_table()
            explained_release = reasons_release.column("sample_id").combine_chunks().cast(pa.int64())
            plans, failures, outcomes_by_variant = [], [], {}
            for variant in variants:
                outcomes = rows.check(variant.punsafe_max, CHECKS, entries)
                failures += [f"{variant.name}: {o.name} ({o.failing_rows} rows)" for o in outcomes if not o.passed]
                files = rows.write_parts(variant.punsafe_max, scratch / variant.name, config.rows_per_part)
                version = release_version(variant.name, files)
                ids, nsfw = rows.sample_ids(variant.punsafe_max), rows.policy_drops(variant.punsafe_max)
                previous = _latest(st, variant.name)
                prev_table = (_read_parts(st, f"{variant.name}/{previous}").select(["SAMPLE_ID", "URL"])
                              if previous and previous != version else None)
                explained = pa.concat_arrays([explained_release,
                                              nsfw.column("sample_id").combine_chunks().cast(pa.int64())])
                verdict = row_count_verdict(
                    None if prev_table is None else prev_table.column("SAMPLE_ID").combine_chunks(), ids, explained,
                    max_unexplained_drop_fraction=config.max_unexplained_drop_fraction,
                )
                if previous == version:
                    verdict = dataclasses.replace(verdict, previous_rows=len(ids), message="same version rebuilt")
                if not verdict.passed:
                    failures.append(f"{variant.name}: row count: {verdict.message}")
                plans.append((variant, files, version, ids, nsfw, previous, prev_table, verdict,
                              rows.describe(variant.punsafe_max)))
                outcomes_by_variant[variant.name] = outcomes
        failures += release_download_failures(st, context.instance.get_dynamic_partitions("shards"))  # an outage is named, never published
        if failures:
            raise dg.Failure("release not published: " + "; ".join(failures))
        published_meta = {}
        for variant, files, version, ids, nsfw, previous, prev_table, verdict, described in plans:
            published_meta[variant.name] = _publish_variant(
                context, st, variant, files, version, ids, nsfw, previous, prev_table, verdict, described,
                facts, reasons_release, scratch / variant.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    first = variants[0]
    card_problems = {name: meta.pop("card_problems") for name, meta in published_meta.items()}[first.name]
    version = published_meta[first.name]["version"]
    st.write_bytes(f"{first.name}/{version}\n".encode(), LATEST)
    release_uri = st.uri(f"releases/{first.name}/{version}")
    return dg.MaterializeResult(
        # The checks ran on exactly the rows now published (the card check verifies the files
        # against them: checksums, schema, counts), so their outcomes are the asset's results.
        check_results=[*(check_result(c, o, None) for c, o in zip(CHECKS, outcomes_by_variant[first.name])),
                       # verify_release_dir ran on the staged directory, before its commit.
                       dg.AssetCheckResult(check_name=CARD_CHECK.name, passed=not card_problems,
                                           severity=dg.AssetCheckSeverity.ERROR,
                                           metadata={"problems": dg.MetadataValue.json(card_problems)})],
        metadata={
            **table_metadata(RELEASE_SCHEMA.empty_table(), release_uri),
            "dagster/row_count": published_meta[first.name]["rows"],
            "version": version,
            "variant": first.name,
            "rows": published_meta[first.name]["rows"],
            "path": dg.MetadataValue.path(release_uri),
            "variants": dg.MetadataValue.json(published_meta),
            "dataset_card": dg.MetadataValue.md(st.read_bytes(f"releases/{first.name}/{version}/README.md").decode()),
            "pairs_extracted": facts["pairs_extracted"],
            "rows_removed_by_removal_lists": facts["removal"]["rows_removed"],
            "drops_by_reason": dg.MetadataValue.json(facts["drops"]),
        }
    )


def _publish_variant(context, st, variant, files, version, ids, nsfw, previous, prev_table, verdict, described,
                     facts, reasons_release, staged: Path) -> dict:
    """Commit one checked variant: its content-addressed directory, diff, then its LATEST."""
    dropped = dict(facts["drops"])
    if nsfw.num_rows:
        dropped["nsfw_policy"] = nsfw.num_rows
    build = {k: v for k, v in facts.items() if k != "drops"}
    build["funnel"] = {"pairs_extracted": facts["pairs_extracted"], "dropped": dict(sorted(dropped.items()))}
    build["pipeline_stats"] = {**facts["pipeline_stats"], "pairs_published": len(ids)}
    # Content-addressed: written once, never replaced; the variant's LATEST is the commit.
    with st.write_once_dir(f"releases/{variant.name}/{version}") as tmp:
        for f in files:
            shutil.move(staged / f["path"], tmp / f["path"])
        write_release_files(tmp, files=files, version=version, variant=variant, described=described, build=build)
        problems = verify_release_dir(tmp)
        if problems:
            raise dg.Failure(f"{variant.name} {version}: " + "; ".join(problems))
    diff_meta = None
    if prev_table is not None:
        why = pa.concat_tables([reasons_release.cast(_REASONS), nsfw.select(["sample_id", "reason"]).cast(_REASONS)])
        diff = release_diff(prev_table, ids, why)
        name = f"releases/{variant.name}/diffs/{previous}__{version}"
        by_reason = dict(sorted(Counter(diff.column("reason").to_pylist()).items()))
        diff_meta = {"from": previous, "to": version, "rows_removed": diff.num_rows,
                     "rows_added": verdict.rows - (verdict.previous_rows - verdict.lost),
                     "removed_by_reason": by_reason}
        st.write_parquet(diff, f"{name}.parquet")
        st.write_bytes((json.dumps(diff_meta, indent=2, sort_keys=True) + "\n").encode(), f"{name}.json")
    st.write_bytes(version.encode() + b"\n", f"releases/{variant.name}/LATEST")
    context.log.info(f"published {variant.name} {version}: {len(ids)} rows ({verdict.message})")
    return {"version": version, "rows": len(ids), "previous": previous, "row_check": verdict.message,
            "diff": diff_meta, "card_problems": problems}
