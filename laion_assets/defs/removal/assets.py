"""`removal_list`: every removal source, loaded and normalized; and the job that re-derives releases.

Sources are the files filed under `<root>/removal/requests/` (one request per file, named by its
whole file name, each read on its own: `core/removal/requests.py`)
plus any configured here (local paths or `s3://` URIs). The asset writes `removal/entries.parquet`
(kind, value, source, listed_on) and `removal/rejected.parquet` (entries that could not be used,
with a reason); its metadata counts entries by source and kind and never shows a value.
"""

import datetime
import hashlib
import json

import dagster as dg
import pyarrow as pa
from pydantic import Field

from laion_assets.core.removal.entries import KINDS, RemovalSource, entry_counts, load_removal_list
from laion_assets.core.removal.guards import flag_entries
from laion_assets.core.removal.receipts import initial_receipt, receipt_path
from laion_assets.core.removal.requests import applied_tables, read_requests
from laion_assets.defs.lib.resources import StorageResource

from laion_assets.core.storage.layout import REMOVAL_ENTRIES as ENTRIES
from laion_assets.core.storage.layout import REMOVAL_REJECTED as REJECTED
from laion_assets.core.storage.layout import REMOVAL_REQUESTS_DIR as REQUESTS_DIR
from laion_assets.core.storage import layout


class RemovalSourceConfig(dg.Config):
    name: str = Field(description="Source name, as it appears in drop reasons (removal:<name>) and the card.")
    uri: str = Field(description="Local path or s3:// URI of a CSV, parquet or one-entry-per-line file.")
    kind: str | None = Field(default=None, description=f"Kind of every entry when the file has no kind column: {', '.join(KINDS)}.")
    listed_on: str | None = Field(default=None, description="Date (YYYY-MM-DD) entries without their own date were listed.")
    format: str = Field(default="auto", description="auto, csv, parquet or lines.")


class RemovalListConfig(dg.Config):
    sources: list[RemovalSourceConfig] = []


def entries_fingerprint(entries: pa.Table) -> str:
    """Changes exactly when the set of (kind, value, source) entries changes."""
    h = hashlib.sha256()
    for k, v, s in sorted(zip(*(entries.column(c).to_pylist() for c in ("kind", "value", "source")))):
        h.update(f"{k}\0{v}\0{s}\n".encode())
    return h.hexdigest()[:16]


REQUESTS_INDEX = layout.REMOVAL_REQUESTS_INDEX
FLAGGED = layout.REMOVAL_FLAGGED
REQUESTS_CHECK = dg.AssetCheckSpec(
    "removal_requests_accepted", asset="removal_list", blocking=False,
    description="Every filed request file was accepted as a whole. A rejected file applies nothing (its "
    "receipt says why); every other request still applies. Failing (WARN) is alerted.",
)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_initial_receipts(st, requests) -> None:
    """A receipt per filed request as soon as it is read (pending or rejected), so a request has one
    even when the publish after it fails."""
    now = _now()
    for r in requests:
        path = receipt_path(r.request_id)
        previous = json.loads(st.read_bytes(path)) if st.exists(path) else None
        st.write_bytes(json.dumps(initial_receipt(r.record(), now=now, previous=previous), indent=2,
                                  sort_keys=True).encode(), path)


@dg.asset(
    # Built once by publish automation when missing (a fresh instance): without it the dbt removal
    # models never have their source and publish waits forever. Later builds: removal requests sensor.
    # (`on_missing()` would not: it ignores an asset already missing at the sensor's first tick.)
    automation_condition=dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed(),
    group_name="removal",
    kinds={"parquet"},
    check_specs=[REQUESTS_CHECK],
    description="Removal sources (hash lists, URLs, domains, prefixes, PDQ hashes) loaded and "
    "normalized; every release applies all of them. Files under removal/requests/ are sources too, "
    "each a request read on its own: a bad file is rejected with its reason, the others apply.",
)
def removal_list(
    context: dg.AssetExecutionContext, config: RemovalListConfig, storage: StorageResource
) -> dg.MaterializeResult:
    st = storage.get()
    # Filed requests are read through the pipeline's storage (local or S3), one by one; configured
    # sources by URI (a broken configured source is a configuration error and fails the run).
    requests = read_requests([(p, st.uri(p)) for p in st.list(REQUESTS_DIR)], st.read_bytes)
    filed_entries, filed_rejected = applied_tables(requests)
    configured = [
        RemovalSource(name=s.name, uri=s.uri, kind=s.kind, listed_on=s.listed_on, format=s.format)
        for s in config.sources
    ]
    clash = sorted({s.name for s in configured} & {r.source for r in requests})
    if clash:
        raise dg.Failure(f"removal sources {clash}: a configured source has a filed request's name")
    conf_entries, conf_rejected = load_removal_list(configured)
    entries = pa.concat_tables([filed_entries, conf_entries]).sort_by([("source", "ascending"), ("kind", "ascending"),
                                                                       ("value", "ascending")])
    rejected = pa.concat_tables([filed_rejected, conf_rejected])
    st.write_parquet(rejected, REJECTED)
    st.write_parquet(entries, ENTRIES)
    st.write_bytes(json.dumps([r.record() for r in requests], indent=2, sort_keys=True).encode(), REQUESTS_INDEX)
    flagged = flag_entries({"kind": k, "value": v, "source": s} for k, v, s in zip(
        *(entries.column(c).to_pylist() for c in ("kind", "value", "source"))))
    st.write_bytes(json.dumps(flagged, indent=2, sort_keys=True).encode(), FLAGGED)
    write_initial_receipts(st, requests)
    refused = {r.file: r.reason for r in requests if r.status == "rejected"}
    for file, reason in refused.items():
        context.log.error(f"removal request {file} rejected, nothing of it applied: {reason}")
    if rejected.num_rows:
        context.log.warning(f"{rejected.num_rows} removal entries rejected; reasons in {REJECTED}")
    for f in flagged:
        context.log.warning(f"over-broad removal entry ({f['source']}, {f['kind']}): {f['reason']}")
    counts = entry_counts(entries)
    return dg.MaterializeResult(
        metadata={
            "entries": entries.num_rows,
            "rejected": rejected.num_rows,
            "sources": len(counts),
            "requests": dg.MetadataValue.json({r.file: {"request_id": r.request_id, "status": r.status,
                                                        "reason": r.reason} for r in requests}),
            "entries_by_source": dg.MetadataValue.json(counts),
            "overbroad_entries": dg.MetadataValue.json(flagged),
            "fingerprint": entries_fingerprint(entries),
        },
        check_results=[dg.AssetCheckResult(
            check_name=REQUESTS_CHECK.name, passed=not refused, severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected_requests": dg.MetadataValue.json(refused)})],
    )
