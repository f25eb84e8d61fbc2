"""Secrets never reach logs, metadata or outputs.

Every secret-bearing environment variable the code reads (S3 credentials, webhook URLs, tokens:
found by scanning the source, plus the AWS ones always) is set to a unique sentinel; real worker
processes run the pipeline against a real instance; then every byte the run left is searched: the
instance directory (event log database, run storage, compute logs), the storage root, and the
workers' stdout/stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg

from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.conftest import REPO, free_port

ALWAYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SECRET_NAME = re.compile(r"""["']([A-Z][A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|WEBHOOK|ACCESS_KEY|API_KEY)[A-Z0-9_]*)["']""")


def secret_variables() -> list[str]:
    """Names of environment variables holding secrets that laion_assets reads (by their names)."""
    names = set(ALWAYS)
    for path in (REPO / "laion_assets").rglob("*.py"):
        names.update(_SECRET_NAME.findall(path.read_text(errors="replace")))
    return sorted(names)


def _sentinels(port: int) -> dict[str, str]:
    out = {}
    for name in secret_variables():
        token = f"sentinel{uuid.uuid4().hex}"
        # A URL-shaped value for URL settings (a webhook that fires goes to a closed local port).
        out[name] = f"http://127.0.0.1:{port}/hook/{token}" if ("WEBHOOK" in name or "URL" in name) else token
    return out


def _find(needles: dict[str, str], haystacks: list[Path], extra: dict[str, str]) -> list[str]:
    tokens = {name: value.rsplit("/", 1)[-1].encode() for name, value in needles.items()}
    found = []
    for base in haystacks:
        for p in [base] if base.is_file() else base.rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                found += [f"{name} in {p}" for name, tok in tokens.items() if tok in data]
    for where, text in extra.items():
        found += [f"{name} in {where}" for name, tok in tokens.items() if tok.decode() in text]
    return found


def test_no_secret_reaches_logs_metadata_or_outputs(embedded_env, tmp_path: Path, monkeypatch):
    root = Path(embedded_env["LAION_ASSETS_ROOT"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sentinels = _sentinels(free_port())
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    outputs: dict[str, str] = {}

    def worker(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "laion_assets_tests.reliability._shard_worker", *args],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        outputs[f"worker {' '.join(args)} output"] = done.stdout + done.stderr
        assert done.returncode == 0, done.stderr[-3000:]

    with dg.instance_for_test(temp_dir=str(home)) as instance:
        # The crawl in-process (definitions built with the sentinels in the environment), a shard in
        # a worker process (its own load of the code location, its own logs).
        crawl = build_definitions(load_settings()).resolve_job_def("crawl_job")
        assert crawl.execute_in_process(instance=instance).success
        keys = sorted(instance.get_dynamic_partitions("shards"))
        worker("--light", "--partition", keys[0])
        runs = instance.get_runs()
        assert len(runs) == 2
        for run in runs:  # run config, tags and every event, as the UI would show them
            outputs[f"run {run.run_id} config+tags"] = repr(run.run_config) + repr(run.tags)
            for record in instance.get_records_for_run(run.run_id).records:
                outputs[f"run {run.run_id} events"] = outputs.get(f"run {run.run_id} events", "") + repr(
                    record.event_log_entry)
    everything = "\n".join(outputs.values())
    assert "image_downloads" in everything and keys[0] in everything  # the search does see the runs
    assert any(root.rglob("*.parquet")) and any(home.rglob("*.db"))
    leaks = _find(sentinels, [home, root], outputs)
    assert leaks == [], leaks
