"""Crash safety and idempotency of the whole pipeline, with real SIGKILLs of real worker processes.

Each kill: a worker process runs `shard_job` (or `publish_job`) against the shared instance; when the
target step has started (seen in the instance's event log) it waits a seeded delay, within the
step's clean duration, and SIGKILLs the worker's process group. Then: nothing a reader sees is
partial (`harness.visible_problems`), and a re-run produces exactly the rows of a clean run.

    pytest -m crash laion_assets_tests/reliability/test_crash.py      # the campaign (LAION_CRASH_KILLS)

The default run keeps a smoke version: one kill mid-download, one mid-CLIP.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from laion_assets.core.storage.layout import ShardPaths
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.reliability._shard_worker import light_run
from laion_assets_tests.reliability.harness import (
    Kill,
    Lab,
    orphans,
    seeded_kills,
    shard_snapshot,
    snapshot_diff,
    visible_problems,
)

SHARD_STEPS = ["image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs"]


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, partition: str | None = None):
    kwargs = {"partition_key": partition} if partition else {}
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    assert result.success, f"{job} {partition} failed after a crash"
    return result


@pytest.fixture
def lab(embedded_env, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        _run(defs, instance, "crawl_job")
        yield Lab(Path(embedded_env["LAION_ASSETS_ROOT"]), home, instance), defs


def _crawl_outputs(root: Path) -> Path:
    return root / "SAMPLE-CRAWL"


def _kill_and_recover(lab: Lab, defs, kill: Kill, reference: dict, partition: str, fresh: bool) -> Kill:
    if fresh:  # a first materialization (nothing of this shard yet) rather than a replacement
        shutil.rmtree(_crawl_outputs(lab.root), ignore_errors=True)
    lab.kill_during(kill)
    kill.problems = visible_problems(lab.root)
    kill.orphans = orphans(lab.root)
    _run(defs, lab.instance, "shard_job", partition)
    after = shard_snapshot(lab.root, partition)
    assert after == reference, f"re-run after {kill} differs from a clean run:\n{snapshot_diff(after, reference)}"
    return kill


def test_a_kill_mid_download_loses_nothing(lab):
    """The default-run smoke: extraction + download workers (no CLIP import), one kill mid-download
    of a first materialization, then a re-run equal to the clean run."""
    lab, _ = lab
    partition = sorted(lab.instance.get_dynamic_partitions("shards"))[0]
    assert light_run(partition, lab.instance)  # the clean run, in-process
    reference = shard_snapshot(lab.root, partition)
    assert {"pairs", "downloads", "images"} <= set(reference)
    clean = lab.instance.get_run_records(limit=1)[0].dagster_run.run_id
    duration = lab.step_durations(clean)["image_downloads"]
    shutil.rmtree(_crawl_outputs(lab.root) / "images")  # the download's first materialization
    for fraction in (0.4, 0.1, 0.0):  # a faster worker can finish first: then kill earlier
        kill = lab.kill_during(Kill(seed=0, job="shard_job", partition=partition, target_step="image_downloads",
                                    delay_s=fraction * duration, light=True))
        if kill.exit_code == -9:
            break
        shutil.rmtree(_crawl_outputs(lab.root) / "images")
    assert kill.exit_code == -9 and kill.landed_in == "image_downloads", kill
    assert visible_problems(lab.root) == []
    assert light_run(partition, lab.instance)  # the re-run a user would launch
    after = shard_snapshot(lab.root, partition)
    assert after == reference, snapshot_diff(after, reference)
    assert orphans(lab.root) == 0, "the re-run left temp files or staging dirs behind"


@pytest.mark.crash
@pytest.mark.timeout(3600)  # a campaign: minutes, not the default 600 s cap
def test_crash_campaign(lab):
    """LAION_CRASH_KILLS kills over the four shard steps (alternating first materialization and
    replacement), then kills of publish_job; figures to LAION_CRASH_REPORT (json) when set."""
    lab, defs = lab
    n_kills = int(os.environ.get("LAION_CRASH_KILLS", "16"))
    keys = sorted(lab.instance.get_dynamic_partitions("shards"))
    partition = keys[0]
    started = time.monotonic()
    clean = _run(defs, lab.instance, "shard_job", partition)
    reference = shard_snapshot(lab.root, partition)
    durations = lab.step_durations(clean.run_id)

    kills = seeded_kills(11, n_kills, "shard_job", partition, durations, SHARD_STEPS)
    for i, kill in enumerate(kills):
        _kill_and_recover(lab, defs, kill, reference, partition, fresh=(i % 2 == 0))

    # The release: every shard done, a clean publish as reference, then kills of publish_job.
    for key in keys[1:]:
        _run(defs, lab.instance, "shard_job", key)
    clean_publish = _run(defs, lab.instance, "publish_job")
    release = clean_publish.asset_materializations_for_node("published_dataset")[-1].metadata
    ref_version, ref_rows = release["version"].value, release["rows"].value
    publish_durations = lab.step_durations(clean_publish.run_id)
    publish_steps = sorted(publish_durations)
    publish_kills = seeded_kills(23, max(4, n_kills // 4), "publish_job", None, publish_durations, publish_steps)
    for kill in publish_kills:
        lab.kill_during(kill)
        kill.problems = visible_problems(lab.root)
        kill.orphans = orphans(lab.root)
        again = _run(defs, lab.instance, "publish_job")
        meta = again.asset_materializations_for_node("published_dataset")[-1].metadata
        assert (meta["version"].value, meta["rows"].value) == (ref_version, ref_rows)
        assert (lab.root / "releases" / "LATEST").read_text().strip() == ref_version

    every = kills + publish_kills
    figures = {
        "kills": len(every),
        "killed_by_signal": sum(1 for k in every if k.exit_code == -9),
        "landed_in": {s: sum(1 for k in every if k.landed_in == s) for s in {k.landed_in for k in every}},
        "visible_problems": sum(len(k.problems) for k in every),
        "max_orphans_after_a_kill": max(k.orphans for k in every),
        "orphans_at_end": orphans(lab.root),
        "reruns_equal_to_clean": len(every),
        "wall_s": round(time.monotonic() - started, 1),
    }
    print("crash campaign:", json.dumps(figures, sort_keys=True))
    if os.environ.get("LAION_CRASH_REPORT"):
        Path(os.environ["LAION_CRASH_REPORT"]).write_text(json.dumps(
            {"figures": figures, "kills": [k.__dict__ for k in every]}, indent=1, default=str))
    assert figures["visible_problems"] == 0, [k.problems for k in every if k.problems]
    assert figures["killed_by_signal"] >= len(every) // 2, "most kills arrived after the run had ended"
    assert figures["orphans_at_end"] == 0


def _file_digests(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(_crawl_outputs(root).rglob("*")) if p.is_file()}


@pytest.mark.crash
@pytest.mark.timeout(3600)  # a campaign: minutes, not the default 600 s cap
def test_idempotency_same_partition_twice(lab):
    """Fresh twice, then over its own outputs: rows always identical; which files are byte-identical."""
    lab, defs = lab
    partition = sorted(lab.instance.get_dynamic_partitions("shards"))[0]
    _run(defs, lab.instance, "shard_job", partition)
    first, first_files = shard_snapshot(lab.root, partition), _file_digests(lab.root)
    shutil.rmtree(_crawl_outputs(lab.root))
    _run(defs, lab.instance, "shard_job", partition)
    second, second_files = shard_snapshot(lab.root, partition), _file_digests(lab.root)
    _run(defs, lab.instance, "shard_job", partition)
    third = shard_snapshot(lab.root, partition)
    assert first == second, snapshot_diff(first, second)
    assert first == third, snapshot_diff(first, third)
    same = sorted(f for f in first_files if second_files.get(f) == first_files[f])
    differ = sorted(set(first_files) ^ set(second_files) | {f for f in first_files if f in second_files
                                                             and second_files[f] != first_files[f]})
    print("idempotency: byte-identical:", same, "differing:", differ)
    p = ShardPaths.from_partition_key(partition)
    for rel in (p.pairs, p.pair_errors, p.pair_stats, p.scores):
        assert rel in same, f"{rel} is no longer byte-identical between two fresh runs"
