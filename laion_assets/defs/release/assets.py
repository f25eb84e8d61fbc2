"""`published_dataset`: a versioned, checked release of the published table."""

import duckdb
import dagster as dg

from laion_assets.core.quality import run_checks
from laion_assets.core.release import CHECKS, pipeline_funnel, release_version, to_release_table, write_release
from laion_assets.defs.automation.schedules import PUBLISH_CONDITION
from laion_assets.defs.checks import stage_checks
from laion_assets.defs.common import table_metadata
from laion_assets.defs.resources import StorageResource
from laion_assets.defs.config_checks import ranged

LATEST = "releases/LATEST"


class ReleaseConfig(dg.Config):
    rows_per_part: int = 1_000_000

    _check_rows_per_part = ranged("rows_per_part", 1, 100_000_000, integer=True)


def _latest_parts(st):
    version = st.read_bytes(LATEST).decode().strip()
    parts = [p for p in st.list(f"releases/{version}", ".parquet") if p.rsplit("/", 1)[-1].startswith("part-")]
    return st.read_parquet_many(parts)


published_dataset_checks = stage_checks("published_dataset", CHECKS, lambda st, pk: {"release": _latest_parts(st)})


@dg.asset(
    check_specs=published_dataset_checks.specs,
    automation_condition=PUBLISH_CONDITION,
    deps=[dg.AssetKey("published_pairs"), dg.AssetKey("dedup_stats")],
    group_name="publish",
    kinds={"parquet"},
    description="A release: LAION-compatible parquet parts, a dataset card (README.md) and "
    "manifest.json with checksums, under releases/<version>/; releases/LATEST names the newest.",
)
def published_dataset(
    context: dg.AssetExecutionContext, config: ReleaseConfig, storage: StorageResource
) -> dg.MaterializeResult:
    st = storage.get()
    with duckdb.connect(str(st.local_file("warehouse.duckdb")), read_only=True) as con:
        published = con.sql("SELECT * FROM published_pairs ORDER BY pair_hash").to_arrow_table()
        dedup = con.sql("SELECT * FROM dedup_stats ORDER BY crawl").fetchall()
        models = [r[0] for r in con.sql("SELECT DISTINCT model_id FROM published_pairs ORDER BY 1").fetchall()]
    table = to_release_table(published)
    failed = [o for o in run_checks({"release": table}, CHECKS) if not o.passed]
    if failed:
        raise dg.Failure(
            "release not published: " + "; ".join(f"{o.name} ({o.failing_rows} rows)" for o in failed),
            metadata={o.name: dg.MetadataValue.json([{k: str(v) for k, v in r.items()} for r in o.sample]) for o in failed},
        )
    version = release_version(table)
    dedup_stats = {
        **pipeline_funnel(st.root_uri, register=st.register_duckdb),
        "pairs_before_dedup": sum(r[1] for r in dedup),
        "duplicates_removed": sum(r[3] for r in dedup),
        "pairs_published": table.num_rows,
    }
    # A version is content-addressed: written once, never replaced; releases/LATEST is the commit.
    with st.write_once_dir(f"releases/{version}") as tmp:
        info = write_release(
            table,
            tmp,
            version=version,
            rows_per_part=config.rows_per_part,
            provenance={"model_id": ", ".join(models), "pipeline_stats": dedup_stats},
        )
    st.write_bytes(version.encode() + b"\n", LATEST)
    release_uri = st.uri(f"releases/{version}")
    card = st.read_bytes(f"releases/{version}/README.md").decode()
    context.log.info(f"published release {version}: {info.rows} rows at {release_uri}")
    return dg.MaterializeResult(
        check_results=published_dataset_checks.evaluate(st),
        metadata={
            "version": version,
            "rows": info.rows,
            "parts": len(info.parts),
            "path": dg.MetadataValue.path(release_uri), **table_metadata(table, release_uri), "model_id": ", ".join(models),
            "dataset_card": dg.MetadataValue.md(card),
            **dedup_stats,
        }
    )

