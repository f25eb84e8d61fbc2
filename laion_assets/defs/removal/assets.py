"""`removal_list`: every removal source, loaded and normalized; and the job that re-derives releases.

Sources are the files filed under `<root>/removal/requests/` (one source per file, named by its stem)
plus any configured here (local paths or `s3://` URIs). The asset writes `removal/entries.parquet`
(kind, value, source, listed_on) and `removal/rejected.parquet` (entries that could not be used,
with a reason); its metadata counts entries by source and kind and never shows a value.
"""

import hashlib

import dagster as dg
import pyarrow as pa
from pydantic import Field

from laion_assets.core.removal.entries import KINDS, RemovalSource, entry_counts, load_removal_list, request_source
from laion_assets.defs.lib.resources import StorageResource

REQUESTS_DIR = "removal/requests"
ENTRIES = "removal/entries.parquet"
REJECTED = "removal/rejected.parquet"


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


@dg.asset(
    # Built once by publish automation when missing (a fresh instance): without it the dbt removal
    # models never have their source and publish waits forever. Later builds: removal requests sensor.
    # (`on_missing()` would not: it ignores an asset already missing at the sensor's first tick.)
    automation_condition=dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed(),
    group_name="removal",
    kinds={"parquet"},
    description="Removal sources (hash lists, URLs, domains, prefixes, PDQ hashes) loaded and "
    "normalized; every release applies all of them. Files under removal/requests/ are sources too.",
)
def removal_list(
    context: dg.AssetExecutionContext, config: RemovalListConfig, storage: StorageResource
) -> dg.MaterializeResult:
    st = storage.get()
    # Filed requests are read through the pipeline's storage (local or S3); configured sources by URI.
    filed = {}
    for relpath in st.list(REQUESTS_DIR):
        source = request_source(relpath.rsplit("/", 1)[-1], st.uri(relpath))
        if source is not None:
            filed[source.name] = (source, relpath)
    configured = [
        RemovalSource(name=s.name, uri=s.uri, kind=s.kind, listed_on=s.listed_on, format=s.format)
        for s in config.sources
    ]
    sources = [src for src, _ in filed.values()] + configured
    entries, rejected = load_removal_list(
        sources, read=lambda s: st.read_bytes(filed[s.name][1]) if filed.get(s.name, (None,))[0] is s else None
    )
    st.write_parquet(rejected, REJECTED)
    st.write_parquet(entries, ENTRIES)
    counts = entry_counts(entries)
    if rejected.num_rows:
        context.log.warning(f"{rejected.num_rows} removal entries rejected; reasons in {REJECTED}")
    return dg.MaterializeResult(
        metadata={
            "entries": entries.num_rows,
            "rejected": rejected.num_rows,
            "sources": len(sources),
            "entries_by_source": dg.MetadataValue.json(counts),
            "fingerprint": entries_fingerprint(entries),
        }
    )
