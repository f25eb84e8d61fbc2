"""`dg check defs` (what CI runs) passes from the repo root, with the venv off PATH."""

import os
import subprocess
import sys
from pathlib import Path

from laion_assets_tests.conftest import REPO


def test_dg_check_defs_passes(embedded_env):
    env = {**os.environ, **embedded_env, "PATH": "/usr/bin:/bin", "DAGSTER_DISABLE_TELEMETRY": "1"}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr
