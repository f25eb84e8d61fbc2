"""What semantic dedup costs on a real publish: the embedded sample, run once through the whole
pipeline (crawl, shards, dbt, publish), then `publish_release` timed in the same run with one extra
variant whose semantic dedup is off (the baseline) and on (`--min-cosine`), alternated `--repeats`
times (median). The SemDeDup step alone (`semantic_duplicates`: locate each row's embedding in its
shard, k-means, in-cluster similarities) is timed apart. Wall and CPU time are printed.

    PYTHONPATH=$PWD .venv/bin/python bench/semdedup_publish.py              # ~1-2 min on 2 cores
    PYTHONPATH=$PWD .venv/bin/python bench/semdedup_publish.py --repeats 5

The last line: `bench: semdedup_publish rows=<n> off_s=<..> on_s=<..> semdedup_s=<..> dropped=<..> ratio=<on/off>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-cosine", type=float, default=0.9)
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-semdedup-"))
    os.environ.update({"LAION_ASSETS_PROFILE": "embedded", "LAION_ASSETS_ROOT": str(base / "data"),
                       "LAION_SAMPLE_IMAGE_PORT": str(_free_port())})
    for k in ("LAION_CRAWL", "LAION_CRAWL_SOURCE", "LAION_CLIP_MODEL", "LAION_CLIP_PRETRAINED"):
        os.environ.pop(k, None)
    import dagster as dg

    from laion_assets.core.release.checks import LossLimits
    from laion_assets.core.release.files import ReleaseVariant
    from laion_assets.core.release.publish import PublishOptions, publish_release
    from laion_assets.core.release.semantic import semantic_duplicates
    from laion_assets.core.release.writer import ReleaseRows
    from laion_assets.core.storage.layout import WAREHOUSE
    from laion_assets.core.storage.local import LocalStorage
    from laion_assets.definitions import build_definitions
    from laion_assets.runner import run_pipeline
    from laion_assets.settings import load_settings

    (base / "home").mkdir()
    t = time.perf_counter()
    with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
        run_pipeline(build_definitions(load_settings()), instance, log_level="ERROR")
    print(f"pipeline (once): {time.perf_counter() - t:.1f} s wall")
    st = LocalStorage(base / "data")
    sample = ReleaseVariant("sample", 1.0)
    timings: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(a.repeats):
        for mode, cut in (("off", None), ("on", a.min_cosine)):
            c, w = time.process_time(), time.perf_counter()
            # Alternating on/off loses and regains the duplicates each time: confirmed, not held.
            publish_release(st, [sample, ReleaseVariant("sample-extra", 1.0, cut)],
                            PublishOptions(limits=LossLimits(confirm_row_loss=True)))
            timings[mode].append(time.perf_counter() - w)
            cpu[mode].append(time.process_time() - c)
    with ReleaseRows.from_warehouse(st.local_file(WAREHOUSE)) as rows:
        c, w = time.process_time(), time.perf_counter()
        drops = semantic_duplicates(st, rows, ReleaseVariant("sample-extra", 1.0, a.min_cosine))
        sem_s, sem_cpu = time.perf_counter() - w, time.process_time() - c
    off, on = statistics.median(timings["off"]), statistics.median(timings["on"])
    print(f"publish off: {off:.2f} s wall ({statistics.median(cpu['off']):.2f} s CPU), on: {on:.2f} s wall "
          f"({statistics.median(cpu['on']):.2f} s CPU), median of {a.repeats}")
    print(f"semantic_duplicates alone: {sem_s:.3f} s wall ({sem_cpu:.3f} s CPU), {drops.rows_compared} rows, "
          f"{drops.clusters} cluster(s), {drops.table.num_rows} dropped at min cosine {a.min_cosine}")
    shutil.rmtree(base, ignore_errors=True)
    print(f"bench: semdedup_publish rows={drops.rows_compared} off_s={off:.2f} on_s={on:.2f} semdedup_s={sem_s:.3f} "
          f"dropped={drops.table.num_rows} ratio={on / off:.2f}")


if __name__ == "__main__":
    main()
