"""bench/clip_gpu.py runs as a script on CPU (the H100 command in docs/clip.md is the same script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from laion_assets import weights as models

REPO = Path(__file__).resolve().parents[3]


def test_clip_gpu_bench_runs_on_cpu_and_prints_its_bench_line():
    cmd = [sys.executable, str(REPO / "bench" / "clip_gpu.py"), "--model", models.TINY_MODEL_NAME,
           "--pretrained", str(models.TINY_CHECKPOINT), "--n", "48", "--batch-size", "16", "--workers", "1",
           "--unique-images", "8", "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"bench: clip_gpu images_per_s=([\d.]+) forward_only_images_per_s=([\d.]+) ratio=([\d.]+)", last)
    assert m, last
    pipeline, forward, ratio = map(float, m.groups())
    assert pipeline > 0 and forward > 0 and abs(ratio - pipeline / forward) < 0.01 + 0.01 * ratio
    assert "images=48" in proc.stdout and "gpu_utilization=n/a" in proc.stdout
