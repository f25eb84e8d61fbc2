"""Fill a real Dagster instance with N shard partitions and their events fast (benches, scale tests).

Reporting events one by one through `report_runless_asset_event` costs ~20 ms each on SQLite (one
SQL compile and one commit per table touched): 30,000 shards with a materialization and 3 checks
each would take ~40 min. `fill_shards` writes the same rows Dagster's SQL event log writes for a
runless event (`event_logs`, `asset_check_executions`, with the events serialized by Dagster
itself) in one executemany per chunk and table, and updates each asset's `asset_keys` row with
Dagster's own upsert. Only the SQLite run shard of the
runless "run" is left empty (nothing reads it). `laion_assets_tests/testing/test_instance_fill.py`
pins that the answers the instance gives (materialized partitions, newest check per partition,
records) are those of the one-by-one path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
import sqlalchemy as db
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable

CHUNK = 2000  # partitions per transaction


@dataclass(frozen=True)
class StageEvents:
    """One asset's events per done shard: a materialization, then one evaluation per check."""

    asset: str
    checks: tuple[tuple[str, bool], ...] = ()  # (check name, blocking)


def _entry(event_type: DagsterEventType, data, ts: float) -> EventLogEntry:
    return EventLogEntry(user_message="", level=20, job_name=RUNLESS_JOB_NAME, run_id=RUNLESS_RUN_ID,
                         error_info=None, timestamp=ts, step_key=None,
                         dagster_event=DagsterEvent(event_type.value, job_name=RUNLESS_JOB_NAME,
                                                    event_specific_data=data))


def _insert_events(conn, storage, entries: Sequence[EventLogEntry]) -> tuple[list[int], list[dict]]:
    """Insert event rows in order; their storage ids (ids grow with insertion order) and rows."""
    t = SqlEventLogStorageTable
    before = conn.execute(db.select(db.func.max(t.c.id))).scalar() or 0
    rows = [storage._event_to_row(e) for e in entries]  # noqa: SLF001 - Dagster's own row
    conn.execute(t.insert(), rows)
    ids = [r[0] for r in conn.execute(db.select(t.c.id).where(t.c.id > before).order_by(t.c.id))]
    if len(ids) != len(entries):
        raise RuntimeError(f"instance fill: inserted {len(entries)} events, read back {len(ids)} ids")
    return ids, rows


def _check_row(storage, entry: EventLogEntry, event_id: int, serialized: str) -> dict:
    ev = entry.get_dagster_event().event_specific_data
    return dict(asset_key=ev.asset_key.to_string(), check_name=ev.check_name, run_id=RUNLESS_RUN_ID,
                execution_status=(AssetCheckExecutionRecordStatus.SUCCEEDED if ev.passed
                                  else AssetCheckExecutionRecordStatus.FAILED).value,
                evaluation_event=serialized, evaluation_event_timestamp=storage._event_insert_timestamp(entry),  # noqa: SLF001
                evaluation_event_storage_id=event_id,
                materialization_event_storage_id=ev.target_materialization_data.storage_id if ev.target_materialization_data else None,
                partition=ev.partition)


def fill_shards(instance: dg.DagsterInstance, keys: Sequence[str], done: Iterable[str], stages: Sequence[StageEvents],
                failed_checks: dict[str, set[str]] | None = None, partitions_name: str = "shards") -> int:
    """Register `keys`, and for each key in `done` record each stage's materialization and its
    checks' evaluations (passed, unless the key's set in `failed_checks` names the check).
    Returns the number of events written."""
    failed_checks = failed_checks or {}
    instance.add_dynamic_partitions(partitions_name, list(keys))
    storage = instance.event_log_storage
    done = list(done)
    written, ts = 0, time.time() - len(done) * len(stages) * 0.001
    last: dict[str, tuple[EventLogEntry, int]] = {}
    for i in range(0, len(done), CHUNK):
        chunk = done[i:i + CHUNK]
        mats: list[EventLogEntry] = []
        for stage in stages:
            for k in chunk:
                ts += 0.0005
                mats.append(_entry(DagsterEventType.ASSET_MATERIALIZATION,
                                   StepMaterializationData(dg.AssetMaterialization(stage.asset, partition=k)), ts))
        with storage.index_transaction() as conn:
            mat_ids, _ = _insert_events(conn, storage, mats)
            checks: list[EventLogEntry] = []
            for entry, mat_id in zip(mats, mat_ids):
                mat = entry.get_dagster_event().step_materialization_data.materialization
                stage = next(s for s in stages if s.asset == mat.asset_key.to_user_string())
                for name, blocking in stage.checks:
                    ts += 0.0005
                    passed = name not in failed_checks.get(mat.partition, set())
                    target = AssetCheckEvaluationTargetMaterializationData(storage_id=mat_id, run_id=RUNLESS_RUN_ID,
                                                                             timestamp=entry.timestamp)
                    checks.append(_entry(DagsterEventType.ASSET_CHECK_EVALUATION, dg.AssetCheckEvaluation(
                        asset_key=mat.asset_key, check_name=name, passed=passed, partition=mat.partition,
                        blocking=blocking, severity=dg.AssetCheckSeverity.ERROR,
                        target_materialization_data=target), ts))
            if checks:
                check_ids, rows = _insert_events(conn, storage, checks)
                conn.execute(AssetCheckExecutionsTable.insert(),
                             [_check_row(storage, e, i, r["event"]) for e, i, r in zip(checks, check_ids, rows)])
            for entry, mat_id in zip(mats, mat_ids):  # Dagster's own `asset_keys` upsert, newest last
                last[entry.get_dagster_event().asset_key.to_string()] = (entry, mat_id)
            for entry, mat_id in last.values():
                storage._store_asset_event(conn, entry, mat_id)  # noqa: SLF001
            last.clear()
        written += len(mats) + len(checks)
    return written
