"""Crash, idempotency and concurrency harness: real instance, real worker processes, readers' view.

A `Lab` is a storage root with the sample crawl plus a Dagster instance (sqlite under DAGSTER_HOME)
that the test process and worker subprocesses share. `kill_during` starts a worker running a job,
waits in the instance's event log for a step to start, sleeps a seeded delay and SIGKILLs the
worker's whole process group (download and DataLoader children included). `visible_problems` is what
any reader would trip over afterwards; `shard_snapshot` is the rows a reader sees, normalized only
where a value is a measurement of the run itself (time of fetch, milliseconds taken).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from laion_assets.core.storage.base import COMMIT_META_KEY, POINTER_NAME
from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.layout import ShardPaths
from laion_assets_tests.conftest import REPO

# Columns that record the run rather than the data: when the fetch happened, how long it took, and
# how many fetch attempts a URL has had over all runs (a re-run retries failed URLs: 1 -> 2).
RUN_MEASUREMENT_COLUMNS = frozenset({"fetched_at", "elapsed_ms", "attempts"})
WORKER = "laion_assets_tests.reliability._shard_worker"


@dataclass
class Kill:
    seed: int
    job: str
    partition: str | None
    target_step: str
    delay_s: float
    light: bool = False  # the worker runs extraction + download only (no CLIP import): the fast smoke
    landed_in: str | None = None  # the step running when the signal arrived (None: not started / done)
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)
    orphans: int = 0


class Lab:
    def __init__(self, root: Path, home: Path, instance: dg.DagsterInstance):
        self.root, self.home, self.instance = root, home, instance

    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home), "PYTHONPATH": str(REPO)}

    def start_worker(self, job: str, partition: str | None, tag: str, light: bool = False) -> subprocess.Popen:
        cmd = [sys.executable, "-m", WORKER, "--job", job, "--tag", tag, *(["--light"] if light else [])]
        if partition:
            cmd += ["--partition", partition]
        # Output to a file, never an unread pipe: a worker blocked on a full pipe never reaches its step.
        log = open(self.home / f"worker-{tag}.log", "w")  # noqa: SIM115 - closed by the child's exit
        try:
            return subprocess.Popen(cmd, env=self.env(), cwd=self.home, start_new_session=True,
                                    stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def worker_log(self, tag: str) -> str:
        return (self.home / f"worker-{tag}.log").read_text(errors="replace")

    def run_worker(self, job: str, partition: str | None, light: bool = False) -> str:
        """Run a worker to completion; its run id."""
        tag = uuid.uuid4().hex
        proc = self.start_worker(job, partition, tag, light)
        assert proc.wait(timeout=600) == 0, self.worker_log(tag)[-3000:]
        run_id = self._run_id(tag)
        assert run_id is not None
        return run_id

    def _run_id(self, tag: str) -> str | None:
        records = self.instance.get_run_records(filters=dg.RunsFilter(tags={"laion/probe": tag}), limit=1)
        return records[0].dagster_run.run_id if records else None

    def steps(self, run_id: str) -> tuple[list[str], set[str]]:
        started = [r.event_log_entry.step_key for r in self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_START).records]
        done = {r.event_log_entry.step_key for r in self.instance.get_records_for_run(
            run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}).records}
        return started, done

    def step_durations(self, run_id: str) -> dict[str, float]:
        start = {r.event_log_entry.step_key: r.event_log_entry.timestamp for r in self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_START).records}
        end = {r.event_log_entry.step_key: r.event_log_entry.timestamp for r in self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records}
        return {k: end[k] - start[k] for k in start if k in end}

    def kill_during(self, kill: Kill, timeout_s: float = 240.0) -> Kill:
        """Run `kill.job` in a worker; SIGKILL it `kill.delay_s` after `kill.target_step` starts."""
        tag = uuid.uuid4().hex
        proc = self.start_worker(kill.job, kill.partition, tag, kill.light)
        deadline = time.monotonic() + timeout_s
        run_id = None
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                run_id = run_id or self._run_id(tag)
                if run_id and kill.target_step in self.steps(run_id)[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"{kill.target_step} never started: {self.worker_log(tag)[-2000:]}")
            time.sleep(kill.delay_s)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            kill.exit_code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        started, done = self.steps(run_id)
        running = [s for s in started if s not in done]
        kill.landed_in = running[-1] if running and kill.exit_code == -signal.SIGKILL else None
        run = self.instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self.instance.report_run_failed(run)  # what run monitoring does for a dead worker
        return kill


# ------------------------------------------------------------------------------ the readers' view


def _commit_record(path: Path) -> dict | None:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[COMMIT_META_KEY]) if COMMIT_META_KEY in meta else None


def _check_committed_dir(d: Path, record: dict | None, problems: list[str]) -> None:
    if record is None:
        return
    version_dir = d / record["version"]
    if not version_dir.is_dir():
        problems.append(f"{d}: record names {record['version']}, which does not exist")
        return
    for name, size in record["files"]:
        f = version_dir / name
        if not f.is_file() or f.stat().st_size != size:
            problems.append(f"{f}: missing or not {size} bytes as its commit record says")


def visible_problems(root: Path) -> list[str]:
    """What a reader of `root` would trip over: unreadable tables, records naming missing files,
    `ok` downloads without their image, a LATEST naming an incomplete release."""
    problems: list[str] = []
    for p in sorted(root.rglob("*.parquet")):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue  # temp names and staging dirs: invisible by construction
        try:
            table = pq.read_table(p)
        except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
            problems.append(f"{p}: unreadable ({exc})")
            continue
        record = _commit_record(p)
        _check_committed_dir(p.with_suffix(""), record, problems)
        if p.parent.name == "images" and record is not None and "status" in table.column_names:
            members = {m for t in (p.with_suffix("") / record["version"]).glob("*.tar")
                       for m in tarfile.open(t).getnames()}
            ok = table.column("status").to_pylist().count("ok")
            jpgs = sum(1 for m in members if m.endswith(".jpg"))
            if jpgs != ok:
                problems.append(f"{p}: {ok} rows ok but {jpgs} images in {record['version']}")
    for pointer in root.rglob(POINTER_NAME):
        if not any(part.startswith(".") for part in pointer.relative_to(root).parts):
            _check_committed_dir(pointer.parent, json.loads(pointer.read_bytes()), problems)
    latest = root / "releases" / "LATEST"
    if latest.exists():
        version = latest.read_text().strip()
        st = LocalStorage(root)
        release = st.local_dir(f"releases/{version}")
        manifest = release / "manifest.json"
        if not manifest.is_file():
            problems.append(f"LATEST names {version} but {manifest} is missing")
    return problems


def orphans(root: Path) -> int:
    """Hidden temp files and staging dirs left behind (invisible to readers, cleaned by the next commit)."""
    return sum(1 for p in root.rglob(".*") if ".tmp-" in p.name or p.name.startswith(".staging-"))


def _rows(path: Path) -> list[tuple]:
    table = pq.read_table(path)
    keep = [c for c in table.column_names if c not in RUN_MEASUREMENT_COLUMNS]
    return sorted(tuple((k, repr(v)) for k, v in r.items()) for r in table.select(keep).to_pylist())


def tar_contents(images_dir: Path) -> list[tuple[str, str]]:
    """(member, sha256 of its bytes) of every member, whatever the tar headers' mtimes."""
    out = []
    for t in sorted(images_dir.glob("*.tar")):
        with tarfile.open(t) as tar:
            for m in tar:
                if m.isfile():
                    out.append((m.name, hashlib.sha256(tar.extractfile(m).read()).hexdigest()))
    return sorted(out)


def snapshot_diff(a: dict, b: dict) -> str:
    """First differences between two snapshots, by stage and column (for assertion messages)."""
    lines = [f"stages only in one: {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
    for stage in sorted(set(a) & set(b)):
        if a[stage] != b[stage]:
            ra, rb = a[stage], b[stage]
            lines.append(f"{stage}: {len(ra)} vs {len(rb)} rows")
            for x, y in zip(ra, rb):
                if x != y:
                    lines.append(f"  first differing row: {sorted(set(x) ^ set(y))[:6]}")
                    break
    return "\n".join(lines)


def shard_snapshot(root: Path, partition: str) -> dict[str, object]:
    """Every row a reader sees of one shard, stage by stage, and the images' bytes."""
    st, p = LocalStorage(root), ShardPaths.from_partition_key(partition)
    snap: dict[str, object] = {}
    for name in ("pairs", "pair_errors", "pair_stats", "downloads", "scores", "filtered"):
        rel = getattr(p, name)
        if st.exists(rel):
            snap[name] = _rows(st.path(rel))
    if st.exists(p.downloads):
        snap["images"] = tar_contents(st.local_dir(p.images_dir))
    return snap


def seeded_kills(seed: int, n: int, job: str, partition: str | None, durations: dict[str, float],
                 steps: list[str]) -> list[Kill]:
    """n kills spread over `steps` in turn, each at a seeded offset within (1.1x) the step's clean duration."""
    rng = random.Random(seed)
    kills = []
    for i in range(n):
        step = steps[i % len(steps)]
        kills.append(Kill(seed=seed * 1000 + i, job=job, partition=partition, target_step=step,
                          delay_s=round(rng.uniform(0.0, 1.1 * durations.get(step, 1.0)), 3)))
    return kills
