"""A shard launched the way the UI and backfills launch it, next to the same shard in-process.

    python bench/ui_run.py [--keep DIR]

Builds the embedded sample crawl twice (two storage roots, one Dagster instance), then materializes
the same partition of the four shard stages (and their checks)
  * in-process: `shard_job.execute_in_process(partition_key=...)` in this (warm) process, as the
    demo does, and
  * as the UI does: `dagster asset materialize --select ... --partition ...` in a fresh process, so
    the run uses the code location's own executor, its process start, definitions load and imports.
Both run on fresh roots (no carried-over downloads) and must keep the same rows. CPU time is printed
beside wall time (on a shared machine the wall-clock ratio swings with the load). Last line:
    bench: ui_run ui_s=<...> in_process_s=<...> ui_cpu_s=<...> in_process_cpu_s=<...> ratio=<ui_s / in_process_s>
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARD_ASSETS = "image_text_pairs,image_downloads,clip_scores,filtered_pairs,filtered_pairs_drop_log"  # the last step writes both


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_env(root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAION_")}
    env.update(
        LAION_ASSETS_PROFILE="embedded",
        LAION_ASSETS_ROOT=str(root),
        LAION_SAMPLE_IMAGE_PORT=str(free_port()),
        DAGSTER_HOME=str(home),
        PYTHONPATH=str(REPO),
    )
    return env


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="ui_run_"))
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env_in, env_ui = embedded_env(work / "root_in_process", home), embedded_env(work / "root_ui", home)

    os.environ.update(env_in)
    import dagster as dg
    import pyarrow.parquet as pq

    from laion_assets.definitions import build_definitions
    from laion_assets.settings import load_settings

    try:
        with dg.DagsterInstance.get() as instance:
            # Setup, not timed: the sample crawl + manifest in each root. The UI root's is made by
            # the CLI too, so no sample image server of this process ever holds its port.
            defs_in = build_definitions(load_settings(env_in))
            assert defs_in.resolve_job_def("crawl_job").execute_in_process(instance=instance).success
            dagster = str(Path(sys.executable).parent / "dagster")
            subprocess.run([dagster, "job", "execute", "-m", "laion_assets.definitions", "-j", "crawl_job"],
                           cwd=REPO, env=env_ui, check=True, capture_output=True, timeout=600)
            key = sorted(instance.get_dynamic_partitions("shards"))[0]
            shard_job = defs_in.resolve_job_def("shard_job")

            cpu0, t0 = self_cpu_s(), time.perf_counter()
            result = shard_job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
            in_process_s, in_process_cpu = time.perf_counter() - t0, self_cpu_s() - cpu0
            assert result.success, "in-process shard run failed"

            cmd = [dagster, "asset", "materialize",
                   "-m", "laion_assets.definitions", "--select", SHARD_ASSETS, "--partition", key]
            cpu0, t0 = children_cpu_s(), time.perf_counter()
            out = subprocess.run(cmd, cwd=REPO, env=env_ui, capture_output=True, text=True, timeout=1800)
            ui_s, ui_cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
            (work / "ui_run.log").write_text(out.stdout + out.stderr)
            if out.returncode != 0:
                print(out.stdout[-4000:], out.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"dagster asset materialize failed (exit {out.returncode})")
            runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
            steps = len({
                r.event_log_entry.step_key
                for r in instance.get_records_for_run(runs[0].dagster_run.run_id,
                                                      of_type=dg.DagsterEventType.STEP_START).records
            })
            same = [pq.read_table(root / "SAMPLE-CRAWL" / "filtered" / f"{key.split('/')[1]}.parquet").num_rows
                    for root in (work / "root_in_process", work / "root_ui")]
            assert same[0] == same[1] > 0, f"the two runs kept different rows: {same}"
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"partition {key}: in-process {in_process_s:.1f} s wall / {in_process_cpu:.1f} s CPU; "
          f"dagster asset materialize {ui_s:.1f} s wall / {ui_cpu:.1f} s CPU, {steps} steps; "
          f"load average {load:.2f}")
    print(f"bench: ui_run ui_s={ui_s:.2f} in_process_s={in_process_s:.2f} ui_cpu_s={ui_cpu:.2f} "
          f"in_process_cpu_s={in_process_cpu:.2f} ratio={ui_s / in_process_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
