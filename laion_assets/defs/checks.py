"""Turn the core's `SqlCheck`s into Dagster asset checks that run DuckDB over a stage's files."""

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from laion_assets.core.quality import SqlCheck, ViewSource, run_checks
from laion_assets.core.storage import Storage
from laion_assets.defs.resources import StorageResource

# Partitioned asset checks are "preview" in Dagster 1.13; we rely on them deliberately (one check
# evaluation per shard), so the warning is noise in every run log.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")

ViewsFn = Callable[[Storage, str | None], Mapping[str, ViewSource]]
ParamsFn = Callable[[Storage, str | None], Mapping[str, Any]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def build_sql_checks(
    asset: Any,
    checks: Sequence[SqlCheck],
    views: ViewsFn,
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    params: ParamsFn | None = None,
) -> list[dg.AssetChecksDefinition]:
    """One asset check per SqlCheck. Blocking checks fail at ERROR severity, others WARN."""

    def make(check: SqlCheck) -> dg.AssetChecksDefinition:
        @dg.asset_check(
            asset=asset,
            name=check.name,
            description=check.description,
            blocking=check.blocking,
            partitions_def=partitions_def,
        )
        def _check(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
            st = storage.get()
            pk = context.partition_key if partitions_def is not None else None
            extra = params(st, pk) if params else None
            outcome = run_checks(views(st, pk), [check], extra)[0]
            return dg.AssetCheckResult(
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata={
                    "failing_rows": outcome.failing_rows,
                    "sample": dg.MetadataValue.json(
                        [{k: _jsonable(v) for k, v in row.items()} for row in outcome.sample]
                    ),
                },
            )

        return _check

    return [make(c) for c in checks]
