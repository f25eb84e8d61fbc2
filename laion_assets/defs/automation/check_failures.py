"""Which shards have a failed blocking check now, kept up to date by storage-id cursors.

Dagster's answer (`get_asset_check_partition_info`, or the `AssetCheckState` behind
`check_failed()`) re-reads every partition of every check each tick: two grouped subqueries per
check over the whole history (linear: ~0.25 s per check at 5,000 shards, ~40 s a tick at 100,000
for the 8 blocking shard checks), and `AssetCheckState` also unions one partition at a time
(quadratic). Here the state of one instance lives in the process that evaluates the gate (the code
server, `use_user_code_server=True`) and each tick reads only what is new:
- check executions by their row id (`asset_check_executions.id > cursor`, a primary-key range),
  plus the rows still PLANNED (a run's check row is updated in place when it finishes);
- the checked assets' materializations after a storage id (`get_latest_storage_id_by_partition`).
A shard fails a check when its newest execution FAILED and targets the shard's newest
materialization (Dagster's `is_current`). The first tick in a process reads everything once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as db
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

PLANNED = AssetCheckExecutionRecordStatus.PLANNED.value
FAILED = AssetCheckExecutionRecordStatus.FAILED.value


@dataclass
class _AssetState:
    mat_cursor: int | None = None
    latest_mat: dict[str, int] = field(default_factory=dict)  # partition -> newest materialization storage id


@dataclass
class _ChecksState:
    row_cursor: int = 0
    planned: set[int] = field(default_factory=set)  # row ids still PLANNED
    failing: dict[tuple[str, str, str], int | None] = field(default_factory=dict)  # (asset, check, partition) -> target mat id
    newest_row: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (asset, check, partition) -> newest row id
    assets: dict[str, _AssetState] = field(default_factory=dict)


_STATES: dict[object, _ChecksState] = {}
_LOCK = threading.Lock()


def _instance_key(instance: dg.DagsterInstance) -> object:
    if instance.is_ephemeral:
        return id(instance)
    return (type(instance.event_log_storage).__name__, instance.root_directory,
            str(getattr(instance.event_log_storage, "postgres_url", "")))


def _apply(state: _ChecksState, rows: Iterable) -> None:
    for row in sorted(rows, key=lambda r: r.id):
        key = (row.asset_key, row.check_name, row.partition)
        state.row_cursor = max(state.row_cursor, row.id)
        if row.id < state.newest_row.get(key, 0):
            # an older row re-read because it was PLANNED (a run that failed before the check
            # leaves it PLANNED for good): a newer execution of the same check and shard decides,
            # and the old row is not read again
            state.planned.discard(row.id)
            continue
        state.newest_row[key] = row.id
        if row.execution_status == PLANNED:
            state.planned.add(row.id)
            state.failing.pop(key, None)
            continue
        state.planned.discard(row.id)
        if row.execution_status == FAILED:
            state.failing[key] = row.materialization_event_storage_id
        else:
            state.failing.pop(key, None)


def failed_shard_checks(instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey]) -> dict[dg.AssetCheckKey, set[str]]:
    """Per check key, the partitions whose newest execution failed against their newest materialization."""
    keys = sorted(set(keys), key=str)
    out: dict[dg.AssetCheckKey, set[str]] = {k: set() for k in keys}
    if not keys:
        return out
    storage = instance.event_log_storage
    t = AssetCheckExecutionsTable
    wanted = {(k.asset_key.to_string(), k.name) for k in keys}
    cols = [t.c.id, t.c.asset_key, t.c.check_name, t.c.partition, t.c.execution_status, t.c.materialization_event_storage_id]
    with _LOCK:
        state = _STATES.setdefault((_instance_key(instance), tuple(sorted(wanted))), _ChecksState())
        assets = sorted({a for a, _ in wanted})
        with storage.index_connection() as conn:
            newest = conn.execute(db.select(db.func.max(t.c.id))).scalar() or 0
            if newest < state.row_cursor:  # storage wiped or replaced: start over
                state.__init__()
            where = db.and_(t.c.asset_key.in_(assets), t.c.partition.isnot(None))
            rows = list(conn.execute(db.select(*cols).where(db.and_(where, t.c.id > state.row_cursor))))
            if state.planned:
                rows += list(conn.execute(db.select(*cols).where(t.c.id.in_(sorted(state.planned)))))
        _apply(state, [r for r in rows if (r.asset_key, r.check_name) in wanted])
        for asset in assets:
            a = state.assets.setdefault(asset, _AssetState())
            new = storage.get_latest_storage_id_by_partition(dg.AssetKey.from_db_string(asset),
                                                             DagsterEventType.ASSET_MATERIALIZATION,
                                                             after_cursor=a.mat_cursor)
            a.latest_mat.update(new)
            a.mat_cursor = max([a.mat_cursor or 0, *new.values()])
        for (asset, check, partition), target in state.failing.items():
            latest = state.assets[asset].latest_mat.get(partition)
            if latest is None or latest == target:  # Dagster's `is_current`
                out[dg.AssetCheckKey(dg.AssetKey.from_db_string(asset), check)].add(partition)
    return out
