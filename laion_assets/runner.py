"""Run the whole graph in-process: the demo command and the end-to-end tests share this.

In production the same jobs run from the UI, from schedules (partition backfills) and from a
container launcher; this runner just calls them in order against one Dagster instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from laion_assets.defs.lib.partitions import shard_partitions


@dataclass
class PipelineRun:
    partition_keys: list[str]
    run_ids: list[str] = field(default_factory=list)
    release_version: str | None = None
    release_dir: Path | None = None
    release_rows: int | None = None


def _run(
    defs: dg.Definitions, job: str, instance: dg.DagsterInstance, log_level: str, **kwargs
) -> dg.ExecuteInProcessResult:
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config, **kwargs
    )
    if not result.success:
        failures = [
            f"{e.step_key}: {e.event_specific_data.error.message.strip()}"
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)
        ]
        where = f" (partition {kwargs['partition_key']})" if "partition_key" in kwargs else ""
        raise RuntimeError(f"{job}{where} failed:\n" + "\n".join(failures or ["see the run log"]))
    return result


def run_pipeline(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    on_shard: Callable[[str, int, int, dict[str, int]], None] | None = None,
    log_level: str = "INFO",
) -> PipelineRun:
    """crawl_job, then shard_job for every registered shard, then publish_job.

    Each run's console log shows `log_level` and up (the event log in the instance keeps everything).
    """
    first = _run(defs, "crawl_job", instance, log_level)
    keys = sorted(instance.get_dynamic_partitions(shard_partitions.name))
    run = PipelineRun(partition_keys=keys, run_ids=[first.run_id])
    for i, key in enumerate(keys):
        result = _run(defs, "shard_job", instance, log_level, partition_key=key)
        run.run_ids.append(result.run_id)
        if on_shard:
            on_shard(key, i + 1, len(keys), shard_counts(result))
    publish = _run(defs, "publish_job", instance, log_level)
    run.run_ids.append(publish.run_id)
    mat = publish.asset_materializations_for_node("published_dataset")[-1]
    run.release_version = mat.metadata["version"].value
    run.release_dir = Path(mat.metadata["path"].value)
    run.release_rows = mat.metadata["rows"].value
    return run


def shard_counts(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Rows each stage wrote in a shard run, from its materialization metadata."""
    counts: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if "rows" in mat.metadata:
            counts[mat.asset_key.to_user_string()] = mat.metadata["rows"].value
        if "ok" in mat.metadata:
            counts["images_ok"] = mat.metadata["ok"].value
    return counts


def failed_checks(instance: dg.DagsterInstance, run_ids: list[str]) -> list[str]:
    """Names of asset checks that did not pass in the given runs (empty when all passed)."""
    bad: list[str] = []
    for run_id in run_ids:
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if not evaluation.passed:
                bad.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return bad


def check_evaluations(instance: dg.DagsterInstance, run_ids: list[str]) -> int:
    return sum(
        len(instance.get_records_for_run(r, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records)
        for r in run_ids
    )
