"""The bulk instance fill answers like events reported one by one (the bench's numbers rest on it)."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.event_api import PartitionKeyFilter

from laion_assets.testing.instance_fill import StageEvents, fill_shards

STAGE = StageEvents("filtered_pairs", (("over_threshold", True), ("downloaded", False)))
KEYS = [f"CC-MAIN-2024-22/{i:05d}" for i in range(12)]
DONE = KEYS[:10]
FAILED = {KEYS[3]: {"downloaded"}}
CHECKS = [dg.AssetCheckKey(dg.AssetKey(STAGE.asset), name) for name, _ in STAGE.checks]


def _instance(tmp_path, name: str) -> dg.DagsterInstance:
    home = tmp_path / name
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def _one_by_one(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions("shards", KEYS)
    for k in DONE:
        instance.report_runless_asset_event(dg.AssetMaterialization(STAGE.asset, partition=k))
        mat = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey(STAGE.asset), asset_partitions=[k]), limit=1).records[0]
        target = AssetCheckEvaluationTargetMaterializationData(storage_id=mat.storage_id, run_id="", timestamp=mat.timestamp)
        for name, blocking in STAGE.checks:
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(STAGE.asset), check_name=name, passed=name not in FAILED.get(k, set()),
                partition=k, blocking=blocking, severity=dg.AssetCheckSeverity.ERROR, target_materialization_data=target))


def _answers(instance: dg.DagsterInstance) -> dict:
    key = dg.AssetKey(STAGE.asset)
    records = instance.fetch_materializations(key, limit=100).records
    latest = instance.get_latest_materialization_event(key)
    per_partition = {}
    for k in KEYS:
        got = instance.event_log_storage.get_latest_asset_check_execution_by_key(CHECKS, partition_filter=PartitionKeyFilter(key=k))
        per_partition[k] = {c.name: (r.status.value, r.evaluation.passed if r.evaluation else None,
                                     r.event.get_dagster_event().event_specific_data.target_materialization_data.storage_id
                                     == instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[k]), limit=1).records[0].storage_id)
                            for c, r in got.items()}
    return {
        "partitions": sorted(instance.get_dynamic_partitions("shards")),
        "materialized": sorted(instance.get_materialized_partitions(key)),
        "records": sorted(r.partition_key for r in records),
        "latest_partition": latest.dagster_event.partition if latest else None,
        "asset_keys": [k for k in instance.all_asset_keys() if k == key],
        "checks": per_partition,
    }


def test_bulk_fill_answers_like_reported_events(tmp_path):
    bulk, reported = _instance(tmp_path, "bulk"), _instance(tmp_path, "reported")
    assert fill_shards(bulk, KEYS, DONE, [STAGE], failed_checks=FAILED) == len(DONE) * 3
    _one_by_one(reported)
    got, want = _answers(bulk), _answers(reported)
    assert got == want
    assert got["materialized"] == DONE and got["latest_partition"] == DONE[-1]
    assert got["checks"][KEYS[3]]["downloaded"] == ("FAILED", False, True)
    assert got["checks"][KEYS[0]]["over_threshold"] == ("SUCCEEDED", True, True)
    assert got["checks"][KEYS[11]] == {}
