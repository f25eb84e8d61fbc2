"""Small helpers every partitioned asset uses."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

# Shard stages retry transient failures (S3/HTTP throttling, a node lost mid-step) with exponential
# backoff: 30 s, 60 s, 120 s (+-jitter). Deterministic failures raise `dg.Failure(allow_retries=False)`.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


# Errors that the same inputs raise again on every try: retrying them costs 5-6.5 min of backoff per
# shard and hides the cause. `deterministic_failure` turns one into an immediate, named failure.
DETERMINISTIC_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def deterministic_failure(partition_key: str, exc: BaseException) -> dg.Failure:
    """`raise deterministic_failure(key, exc) from exc`: fails at once (no retry), naming the file."""
    name = getattr(exc, "filename", None)
    what = f"{type(exc).__name__}: {name}" if name else f"{type(exc).__name__}: {exc}"
    return dg.Failure(description=f"{partition_key}: {what} (not retried: the same input fails the same way)",
                      allow_retries=False)


def require_registered_partition(context: dg.AssetExecutionContext) -> str:
    """The run's shard key, refused before any work when it is not a registered partition: runs
    launched from the UI or GraphQL with a typed key get this far (Dagster checks only in-process)."""
    key = context.partition_key
    partitions_def = context.assets_def.partitions_def
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition) and not context.instance.has_dynamic_partition(
        partitions_def.name, key
    ):
        context.instance.add_run_tags(context.run_id, {"dagster/retry_on_asset_or_op_failure": "false"})
        raise dg.Failure(
            description=f"partition {key!r} is not a registered `{partitions_def.name}` partition (a key "
            "typed in the launchpad or sent over GraphQL must be one of the keys listed for the asset; "
            "shard keys are `<crawl>/<5-digit shard>`); nothing was run and it is not retried",
            allow_retries=False,
        )
    return key


def progress_logger(context: dg.AssetExecutionContext, what: str, every_s: float = 10.0) -> Callable[..., None]:
    """A progress callback that writes '<what>: done/total' to the run log at most every `every_s`."""
    last = [0.0]

    def report(done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or (total is not None and done >= total):
            last[0] = now
            suffix = f"/{total}" if total is not None else ""
            context.log.info(f"{context.partition_key} {what}: {done}{suffix}")

    return report


def stats_metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """Flat stats as UI metadata: numbers stay numbers, the rest becomes text."""
    out: dict[str, Any] = {}
    for k, v in sorted(stats.items()):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The core's pyarrow schema as the UI's column table (name, type, nullability, description)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(
            name=f.name,
            type=str(f.type),
            description=(f.metadata or {}).get(b"description", b"").decode() or None,
            constraints=dg.TableColumnConstraints(nullable=f.nullable),
        )
        for f in schema
    ])


def table_metadata(table: pa.Table, path: Any = None) -> dict[str, Any]:
    """Standard table metadata for a written table: `dagster/row_count`, `dagster/column_schema`,
    and `dagster/uri` (where it was written) so the UI shows rows, columns and a link."""
    out: dict[str, Any] = {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(table.schema),
    }
    if path is not None:
        out["dagster/uri"] = str(path)
    return out


def markdown_table(header: tuple[str, str], rows: list[tuple[Any, Any]]) -> dg.MetadataValue:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {str(k).replace('|', '/')} | {v} |" for k, v in rows]
    return dg.MetadataValue.md("\n".join(lines))


def drop_reasons(stats: dict[str, Any], prefix: str = "dropped_") -> dict[str, Any]:
    """`drop_reasons`: the stats' `dropped_<reason>` counts as a markdown table (most first)."""
    rows = sorted(((k[len(prefix):], v) for k, v in stats.items() if k.startswith(prefix)), key=lambda r: -r[1])
    return {"drop_reasons": markdown_table(("reason", "pairs"), rows)} if rows else {}


def value_counts(table: pa.Table, *columns: str) -> dg.MetadataValue:
    """Rows per distinct value of `columns` (e.g. download status and reason) as a markdown table."""
    counts = table.group_by(list(columns)).aggregate([([], "count_all")]).to_pylist()
    rows = sorted(((" / ".join(str(r[c] or "-") for c in columns), r["count_all"]) for r in counts),
                  key=lambda r: -r[1])
    return markdown_table((" / ".join(columns), "rows"), rows)


def similarity_histogram(values: Sequence[float | None], bins: int = 10) -> dg.MetadataValue:
    """CLIP similarity of scored pairs in `bins` bins over [min, max], with a text bar per bin."""
    xs = [v for v in values if v is not None and v == v]
    if not xs:
        return dg.MetadataValue.md("no scored pairs")
    lo, hi = min(xs), max(xs)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for x in xs:
        counts[min(int((x - lo) / width), bins - 1)] += 1
    top = max(counts)
    rows = [(f"{lo + i * width:.3f} .. {lo + (i + 1) * width:.3f}", f"{c} {'#' * round(20 * c / top)}")
            for i, c in enumerate(counts)]
    return markdown_table(("similarity", "pairs"), rows)
