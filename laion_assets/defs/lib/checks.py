"""Turn the core's `SqlCheck`s into Dagster asset checks that run DuckDB over a stage's files.

A stage's checks are evaluated inside its asset's step (`StageChecks`: `check_specs` on the asset,
results returned with its `MaterializeResult`): one process per asset instead of one per check,
which is most of what made a UI-launched shard slow (22 steps -> 4). A blocking check that fails at
ERROR still fails the step after the materialization is recorded, so downstream steps do not run.

Shard stages' specs carry the shard partitions (`partitions_def`): each evaluation is recorded for
its shard, so the UI, the alerts and `all_deps_blocking_checks_passed` see one status per shard,
not whichever shard ran last.
"""

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from laion_assets.core.checks import CheckOutcome, SqlCheck, ViewSource, run_checks
from laion_assets.core.storage.base import Storage

# Partitioned asset checks are "preview" in Dagster 1.13; we rely on them deliberately (one check
# evaluation per shard), so the warning is noise in every run log.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")

ViewsFn = Callable[[Storage, str | None], Mapping[str, ViewSource]]
ParamsFn = Callable[[Storage, str | None], Mapping[str, Any]]

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def ui_text(text: str) -> str:
    """Text the UI renders as markdown: `<img alt>`-like tags outside code spans get backticks
    (markdown would swallow them as HTML)."""
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(_HTML_TAG.sub(lambda t: f"`{t.group(0)}`", text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_HTML_TAG.sub(lambda t: f"`{t.group(0)}`", text[pos:]))
    return "".join(out)


def check_description(check: SqlCheck, params: Mapping[str, Any] | None = None) -> str:
    """The check's description with its `{param}` placeholders filled, ready for the UI."""
    values = {**check.params, **(params or {})}
    filled = _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), check.description)
    return ui_text(filled)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def check_result(check: SqlCheck, outcome: CheckOutcome, params: Mapping[str, Any] | None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=check_description(check, params),
        metadata={
            "failing_rows": outcome.failing_rows,
            # The sample's row keys (`key`, `<crawl>/<shard>/<n>`) for the alert and the UI: where to look.
            "failing_keys": dg.MetadataValue.json([str(r["key"]) for r in outcome.sample if r.get("key") is not None]),
            "sample": dg.MetadataValue.json([{k: _jsonable(v) for k, v in row.items()} for row in outcome.sample]),
        },
    )


def check_specs(asset: str, checks: Sequence[SqlCheck],
                partitions_def: dg.PartitionsDefinition | None = None) -> list[dg.AssetCheckSpec]:
    """The asset check specs of `checks` on `asset` (blocking as each check says), partitioned like
    the asset when `partitions_def` is given."""
    return [dg.AssetCheckSpec(c.name, asset=asset, description=check_description(c), blocking=c.blocking,
                              partitions_def=partitions_def)
            for c in checks]


@dataclass(frozen=True)
class StageChecks:
    """A stage's SqlChecks, declared on its asset (`check_specs=...specs`) and evaluated in its step
    (`MaterializeResult(check_results=...evaluate(st, partition_key))`)."""

    asset: str
    checks: Sequence[SqlCheck]
    views: ViewsFn
    params: ParamsFn | None = None
    partitions_def: dg.PartitionsDefinition | None = None

    @property
    def specs(self) -> list[dg.AssetCheckSpec]:
        return check_specs(self.asset, self.checks, self.partitions_def)

    def evaluate(self, st: Storage, partition_key: str | None = None) -> list[dg.AssetCheckResult]:
        extra = self.params(st, partition_key) if self.params else None
        outcomes = run_checks(self.views(st, partition_key), self.checks, extra)
        return [check_result(c, o, extra) for c, o in zip(self.checks, outcomes)]


def stage_checks(
    asset: str, checks: Sequence[SqlCheck], views: ViewsFn, *, params: ParamsFn | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> StageChecks:
    return StageChecks(asset, tuple(checks), views, params, partitions_def)
