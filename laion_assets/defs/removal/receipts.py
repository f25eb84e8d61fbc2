"""`removal_receipts`: after every publish, each filed request's receipt says whether it landed,
in which version of every release variant, how many rows it removed there, and when.

Reads `removal/requests.json` (written by `removal_list`), the manifests of the versions the last publish
made (their `removal.sources` counts) and the warehouse's `removal_matches`; writes
`removal/receipts/<request_id>.json` and `removal/receipts.parquet`. Core: `core/removal/receipts.py`.
"""

import json

import dagster as dg
import duckdb

from laion_assets.core.removal.receipts import (
    LANDED,
    PENDING,
    REJECTED,
    initial_receipt,
    landed_receipt,
    receipt_path,
    receipts_summary,
    receipts_table,
)
from laion_assets.core.storage.layout import REMOVAL_RECEIPTS_TABLE
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.removal.assets import REQUESTS_INDEX, _now

RECEIPTS_TABLE = REMOVAL_RECEIPTS_TABLE
WAREHOUSE = "warehouse.duckdb"  # the dbt warehouse (defs/release/assets.py WAREHOUSE)


def published_versions(instance: dg.DagsterInstance, st) -> dict[str, str]:
    """{variant: version} of the latest `published_dataset` materialization (its `variants`
    metadata), else the default variant's `releases/LATEST`."""
    event = instance.get_latest_materialization_event(dg.AssetKey("published_dataset"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "variants" in meta:
        return {v: m["version"] for v, m in meta["variants"].value.items()}
    if st.exists("releases/LATEST"):
        variant, _, version = st.read_bytes("releases/LATEST").decode().strip().partition("/")
        return {variant: version}
    return {}


def published_after_list(instance: dg.DagsterInstance) -> bool:
    """The last publish ran on the current removal list (so it applied, and checked, every accepted
    request in it)."""
    pub = instance.get_latest_materialization_event(dg.AssetKey("published_dataset"))
    lst = instance.get_latest_materialization_event(dg.AssetKey("removal_list"))
    return pub is not None and lst is not None and pub.timestamp >= lst.timestamp


def latest_manifests(instance: dg.DagsterInstance, st) -> dict[str, dict]:
    """{variant: manifest} of the versions last published."""
    out = {}
    for variant, version in published_versions(instance, st).items():
        manifest = f"releases/{variant}/{version}/manifest.json"
        if st.exists(manifest):
            out[variant] = json.loads(st.read_bytes(manifest))
    return out


def warehouse_matches(st) -> dict[str, int]:
    """{source: rows matched} from the warehouse (a row matched by two sources counts for both)."""
    if not st.exists(WAREHOUSE):
        return {}
    with duckdb.connect(str(st.local_file(WAREHOUSE)), read_only=True) as con:
        try:
            return dict(con.sql("SELECT source, count(DISTINCT (crawl, shard, key)) FROM removal_matches "
                                "WHERE source IS NOT NULL GROUP BY 1").fetchall())
        except duckdb.CatalogException:
            return {}


@dg.asset(
    group_name="publish",  # with published_dataset: publish_automation evaluates its condition
    kinds={"json", "parquet"},
    deps=[dg.AssetKey("published_dataset"), dg.AssetKey("removal_list")],
    automation_condition=dg.AutomationCondition.eager(),
    description="A receipt per filed removal request (`removal/receipts/<request_id>.json` and "
    "`removal/receipts.parquet`): file, source, entries by kind, entries rejected (line and reason, "
    "never values), and once landed the version of every variant, rows removed there, and when. "
    "A request that matched nothing, or was rejected, has one too.",
)
def removal_receipts(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    st = storage.get()
    records = json.loads(st.read_bytes(REQUESTS_INDEX)) if st.exists(REQUESTS_INDEX) else []
    from laion_assets.defs.removal.fast_path import warehouse_behind

    # A warehouse built on an older removal list (after a takedown_job run) has not matched the new
    # entries: rows_matched stays unknown (null) until the next dbt build counts them.
    behind = warehouse_behind(context.instance, ("removal_matches",))
    manifests, now = latest_manifests(context.instance, st), _now()
    matched = None if behind else warehouse_matches(st)
    applied = published_after_list(context.instance)
    receipts = []
    for record in records:
        path = receipt_path(record["request_id"])
        previous = json.loads(st.read_bytes(path)) if st.exists(path) else None
        receipt = landed_receipt(initial_receipt(record, now=now, previous=previous), manifests, matched, now=now,
                                 applied=applied)
        st.write_bytes(json.dumps(receipt, indent=2, sort_keys=True).encode(), path)
        receipts.append(receipt)
    st.write_parquet(receipts_table(receipts), RECEIPTS_TABLE)
    by_status = {s: sum(r["status"] == s for r in receipts) for s in (LANDED, PENDING, REJECTED)}
    if by_status[PENDING]:
        context.log.warning(f"{by_status[PENDING]} removal requests not in the published versions yet")
    return dg.MaterializeResult(metadata={
        **{f"requests_{s}": n for s, n in by_status.items()},
        "receipts": dg.MetadataValue.json(receipts_summary(receipts)),
        "path": dg.MetadataValue.path(st.uri(RECEIPTS_TABLE)),
    })
