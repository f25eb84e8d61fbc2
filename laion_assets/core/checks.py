"""DuckDB data-quality checks: SQL that selects the rows breaking a rule.

Each stage module exports a list of `SqlCheck`s over named views (`pairs`, `pair_errors`,
`downloads`, `scores`, `filtered`, `release`, ...). The Dagster shell registers those views over the
stage's parquet and turns each outcome into an asset check result; tests run them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa


@dataclass(frozen=True)
class SqlCheck:
    """A rule over one stage's data.

    `sql` selects the offending rows (zero rows = pass). It may use `{name}` placeholders that are
    filled from `params` merged with the caller's params; views are referenced by name.
    """

    name: str
    description: str
    sql: str
    blocking: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    failing_rows: int
    sample: list[dict[str, Any]]
    description: str


def quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


ViewSource = str | Path | Sequence[str | Path] | pa.Table


def register_parquet_views(con: duckdb.DuckDBPyConnection, views: Mapping[str, ViewSource]) -> None:
    """Create (or replace) one view per name over parquet file(s), or over an Arrow table."""
    for name, paths in views.items():
        if isinstance(paths, pa.Table):
            con.register(name, paths)
            continue
        if isinstance(paths, (str, Path)):
            paths = [paths]
        listed = ", ".join(quote_literal(str(p)) for p in paths)
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{listed}], union_by_name=true)"
        )


def run_check(
    con: duckdb.DuckDBPyConnection,
    check: SqlCheck,
    params: Mapping[str, Any] | None = None,
    sample_size: int = 5,
) -> CheckOutcome:
    merged = {**check.params, **(params or {})}
    sql = check.sql.format(**merged)
    rel = con.sql(f"SELECT * FROM ({sql}) AS failing")
    count = con.sql(f"SELECT count(*) FROM ({sql}) AS failing").fetchall()[0][0]
    sample: list[dict[str, Any]] = []
    if count:
        cols = rel.columns
        sample = [dict(zip(cols, row)) for row in rel.limit(sample_size).fetchall()]
    return CheckOutcome(check.name, count == 0, int(count), sample, check.description)


def run_checks(
    views: Mapping[str, ViewSource],
    checks: Sequence[SqlCheck],
    params: Mapping[str, Any] | None = None,
) -> list[CheckOutcome]:
    """Run checks in a fresh in-memory DuckDB over the given parquet views."""
    with duckdb.connect(":memory:") as con:
        register_parquet_views(con, views)
        return [run_check(con, c, params) for c in checks]
