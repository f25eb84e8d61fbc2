"""A crawl driven by the real daemon on the shipped K8s instance config over a real PostgreSQL:
`dagster dev` (webserver + daemon) with the `shard_backfill` schedule on runs every shard; one shard
fails (a WARC file missing) until the schedule gives it up and publish waits; the file is put back,
`ops shards retry` lets it run again, the publish automation sensor publishes, and re-running a
published shard leads to a new release (a new `published_dataset` materialization: the version id
is content-addressed, so the same shard data rebuilds the same version).

Swapped in the config (see test_postgres_instance.py): Postgres port, run launcher
(DefaultRunLauncher: one local process per run), compute-log endpoint (moto); and here the
coordinator's dequeue interval (1 s) and the schedule's cron (every minute) to keep it short.
Not in the default run: `pytest -m postgres`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from laion_assets import ops
from laion_assets.core.storage.layout import manifest_path

from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.defs.automation.progress import crawl_progress
from laion_assets.defs.automation.shard_status import shard_check_status
from laion_assets.testing.postgres import deploy_instance_yaml, postgres_server
from laion_assets.testing.s3 import moto_s3
from laion_assets_tests.conftest import REPO, free_port
from laion_assets_tests.e2e.test_dagster_dev import (
    LOCATION, LOCATION_QUERY, finished_status, graphql, launch, wait_for, write_sample_shard)

pytestmark = pytest.mark.postgres
START_SCHEDULE = """mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }"""


def _release(instance):
    ev = instance.get_latest_materialization_event(dg.AssetKey("published_dataset"))
    return ev.asset_materialization.metadata["version"].value if ev else None


def _publishes(instance) -> list:
    return instance.fetch_materializations(dg.AssetKey("published_dataset"), limit=100).records


def _hide_a_warc(root: Path, crawl: str, key: str) -> tuple[Path, Path]:
    """Move one of `key`'s WARC files away: its extraction fails (FileNotFoundError, not retried)."""
    manifest = pq.read_table(root / manifest_path(crawl)).to_pylist()
    warc = Path(next(r["warc_uri"] for r in manifest if r["partition_key"] == key))
    hidden = warc.with_name(warc.name + ".hidden")
    warc.rename(hidden)
    return warc, hidden


@pytest.mark.timeout(1500)
def test_daemon_backfills_publishes_and_republishes_after_a_shard_rerun(embedded_env, tmp_path: Path):
    with postgres_server() as pg, moto_s3() as s3:
        bucket = s3.create_bucket("dagster-logs")
        config = yaml.safe_load(deploy_instance_yaml(REPO / "deploy" / "k8s" / "dagster.yaml", pg,
                                                     s3_endpoint_url=s3.endpoint_url))
        config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LAION_"))}
        env.update(embedded_env, **pg.env, **s3.env, DAGSTER_HOME=str(home), LAION_DAGSTER_LOGS_BUCKET=bucket,
                   LAION_BACKFILL_CRON="* * * * *")
        os.environ.update({k: env[k] for k in (*pg.env, "LAION_DAGSTER_LOGS_BUCKET")})
        root = Path(embedded_env["LAION_ASSETS_ROOT"])
        keys = write_sample_shard(root, int(embedded_env["LAION_SAMPLE_IMAGE_PORT"]))
        crawl, broken = keys[0].split("/")[0], keys[1]
        warc, hidden = _hide_a_warc(root, crawl, broken)
        port, log = free_port(), tmp_path / "dagster_dev.log"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("shards", keys)  # what crawl_job / discovery register
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                                     "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            def loaded():
                entries = graphql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries)

            wait_for("the code location", loaded, 300, proc, log)
            selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                        "scheduleName": "shard_backfill"}
            assert graphql(url, START_SCHEDULE, {"s": selector})["startSchedule"]["__typename"] == "ScheduleStateResult"

            with dg.DagsterInstance.from_config(str(home)) as instance:
                # The broken shard: the run fails, the instance retries it (run_retries: 2), the
                # schedule then gives it up (3 failures); the other shard is done, publish waits.
                def one_done_one_given_up():
                    (p,) = crawl_progress(instance)
                    return p.given_up if p.done == 1 and p.given_up else None

                given_up = wait_for("the broken shard given up", one_done_one_given_up, 900, proc, log)
                assert given_up == [broken]
                names = [c.name for c in FILTER_CHECKS]
                good = shard_check_status(instance, "filtered_pairs", names, keys[0])
                assert {(s.partition, s.status) for s in good} == {(keys[0], "SUCCEEDED")}
                # its runs failed before filtered_pairs: planned (or never planned), never evaluated
                assert {s.status for s in shard_check_status(instance, "filtered_pairs", names, broken)} <= {"MISSING", "PLANNED"}
                assert _release(instance) is None  # a shard is missing: nothing published
                report = launch(url, "progress_job")
                assert wait_for("the progress report", lambda: finished_status(url, report), 300, proc, log) == "SUCCESS"
                md = instance.get_latest_materialization_event(dg.AssetKey("crawl_progress")).asset_materialization.metadata
                assert md["shards_done"].value == 1 and md["shards_given_up"].value == 1
                assert md["given_up_shards"].value == {crawl: [broken]}

                hidden.rename(warc)  # the operator fixes the cause, then lets the schedule retry
                assert ops.main(["shards", "retry", broken], instance=instance) == 0
                first = wait_for("the first release", lambda: _release(instance), 900, proc, log)
                backfilled = instance.get_runs(dg.RunsFilter(job_name="shard_job", tags={"laion-assets/backfill": crawl}))
                assert {r.tags["dagster/partition"] for r in backfilled} == set(keys)
                for key in keys:
                    status = shard_check_status(instance, "filtered_pairs", names, key)
                    assert {(s.partition, s.status) for s in status} == {(key, "SUCCEEDED")}
                (progress,) = crawl_progress(instance)
                assert progress.done == len(keys) and not progress.given_up and not progress.failed

                published = len(_publishes(instance))
                rerun = launch(url, "shard_job", {"dagster/partition": keys[0]})  # an operator re-runs a shard
                assert wait_for("the re-run", lambda: finished_status(url, rerun), 300, proc, log) == "SUCCESS"
                rerun_end = instance.get_run_record_by_id(rerun).end_time
                newer = wait_for("a new release", lambda: [r for r in _publishes(instance) if r.timestamp > rerun_end],
                                 600, proc, log)
                assert len(_publishes(instance)) > published
                assert newer[0].asset_materialization.metadata["version"].value == first  # same data, same version
                report = launch(url, "progress_job")
                assert wait_for("the progress report", lambda: finished_status(url, report), 300, proc, log) == "SUCCESS"
                md = instance.get_latest_materialization_event(dg.AssetKey("crawl_progress")).asset_materialization.metadata
                assert md["shards_done"].value == len(keys) and md["shards_given_up"].value == 0
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
