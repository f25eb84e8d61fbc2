"""`dagster dev` as the README starts it (venv not activated, dbt off PATH): the location loads,
GraphQL lists every asset and check, a shard run launched through GraphQL succeeds, and a partition
backfill launched through GraphQL is carried out by the daemon `dagster dev` runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from laion_assets.core.crawl.manifest import list_source, make_shards, manifest_table
from laion_assets.core.storage.layout import manifest_path
from laion_assets.core.sample.crawl import SAMPLE_CRAWL, build_sample_crawl
from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.conftest import REPO, free_port

LOCATION = "laion_assets"
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
telemetry:
  enabled: false
"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert "errors" not in out, out
    return out["data"]


def wait_for(what: str, fn, timeout_s: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster dev exited while waiting for {what}:\n{log.read_text()[-5000:]}"
        try:
            value = fn()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-5000:]}")


LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSETS_QUERY = """query($loc: String!) { repositoryOrError(repositorySelector: {
  repositoryLocationName: $loc, repositoryName: "__repository__"}) { ... on Repository {
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
ADD_PARTITION = """mutation($loc: String!, $key: String!) { addDynamicPartition(partitionsDefName: "shards",
  partitionKey: $key, repositorySelector: {repositoryLocationName: $loc, repositoryName: "__repository__"}) {
  __typename } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
# filtered_pairs_drop_log: the filtered_pairs step's second output (a multi-asset, selected whole)
SHARD_ASSETS = ("image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs", "filtered_pairs_drop_log")


def launch(url: str, job: str, tags: dict[str, str] | None = None) -> str:
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    out = graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def finished_status(url: str, run_id: str) -> str | None:
    status = graphql(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


def write_sample_shard(root: Path, image_port: int) -> str:
    """The sample crawl and its manifest, made by the core directly (what `crawl_job` would write),
    while `dagster dev` starts; returns the first shard's partition key."""
    st = LocalStorage(str(root))
    with st.staging_dir("sample-crawl") as tmp:
        build_sample_crawl(tmp, f"http://127.0.0.1:{image_port}")
    shards = make_shards(SAMPLE_CRAWL, list_source(str(st.local_dir("sample-crawl") / "warc")), 2)
    st.write_parquet(manifest_table(shards), manifest_path(SAMPLE_CRAWL))
    return [s.partition_key for s in shards]


def test_dagster_dev_loads_and_runs_a_shard(embedded_env, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    dbt_dir = tmp_path / "dbt"  # a copy without target/: the location must parse it with its own dbt
    shutil.copytree(REPO / "dbt", dbt_dir, ignore=shutil.ignore_patterns("target", "logs"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LAION_", "VIRTUAL_ENV"))}
    env.update(embedded_env, DAGSTER_HOME=str(home), LAION_DBT_PROJECT_DIR=str(dbt_dir), PATH="/usr/bin:/bin")
    dagster = Path(sys.executable).parent / "dagster"
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        key, backfill_key = write_sample_shard(Path(embedded_env["LAION_ASSETS_ROOT"]),
                                               int(embedded_env["LAION_SAMPLE_IMAGE_PORT"]))

        def location_loaded():
            entries = graphql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
            entry = next((e for e in entries if e["name"] == LOCATION), None)
            if entry is None or entry["loadStatus"] != "LOADED":
                return None
            return entry

        entry = wait_for("the code location", location_loaded, 240, proc, log)
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry

        nodes = graphql(url, ASSETS_QUERY, {"loc": LOCATION})["repositoryOrError"]["assetNodes"]
        listed_assets = {"/".join(n["assetKey"]["path"]) for n in nodes}
        listed_checks = {
            ("/".join(n["assetKey"]["path"]), c["name"])
            for n in nodes for c in (n["assetChecksOrError"] or {}).get("checks", [])
        }
        graph = build_definitions(load_settings()).resolve_asset_graph()
        assert listed_assets == {k.to_user_string() for k in graph.get_all_asset_keys()}
        assert listed_checks == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
        assert len(listed_checks) >= 20

        added = graphql(url, ADD_PARTITION, {"loc": LOCATION, "key": key})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
        shard_run = launch(url, "shard_job", {"dagster/partition": key})
        assert wait_for("shard_job", lambda: finished_status(url, shard_run), 300, proc, log) == "SUCCESS"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = instance.get_run_by_id(shard_run)
            assert run.tags["dagster/partition"] == key
            steps = instance.get_records_for_run(shard_run, of_type=dg.DagsterEventType.STEP_SUCCESS).records
            assert len(steps) == 4  # one step per stage: the checks run inside them
        assert (dbt_dir / "target" / "manifest.json").exists()

        # A key typed in the launchpad that is not a registered partition: Dagster lets a run launched
        # this way start, so the first stage refuses it at once (no retries, no output).
        bad_run = launch(url, "shard_job", {"dagster/partition": "CC-MAIN-2099-01/00000"})
        assert wait_for("the bad run", lambda: finished_status(url, bad_run), 120, proc, log) == "FAILURE"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            failures = instance.get_records_for_run(bad_run, of_type=dg.DagsterEventType.STEP_FAILURE).records
            assert [f.event_log_entry.step_key for f in failures] == ["image_text_pairs"]
            error = failures[0].event_log_entry.dagster_event.event_specific_data.error
            assert "'CC-MAIN-2099-01/00000' is not a registered `shards` partition" in error.message
            assert not instance.get_records_for_run(
                bad_run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records

        # A backfill of the other shard, as the UI's "Materialize" on a partition range launches it:
        # the daemon that `dagster dev` runs submits one run per partition, and it succeeds.
        added = graphql(url, ADD_PARTITION, {"loc": LOCATION, "key": backfill_key})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
        params = {"assetSelection": [{"path": [a]} for a in SHARD_ASSETS], "partitionNames": [backfill_key]}
        out = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert out["__typename"] == "LaunchBackfillSuccess", out

        def backfill_done():
            status = graphql(url, BACKFILL_STATUS, {"id": out["backfillId"]})["partitionBackfillOrError"]["status"]
            return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

        assert wait_for("the backfill", backfill_done, 300, proc, log) in ("COMPLETED", "COMPLETED_SUCCESS")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": out["backfillId"]}))
            assert [r.tags["dagster/partition"] for r in runs] == [backfill_key]
            assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
            done = {e.asset_key.to_user_string() for e in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("filtered_pairs"),
                                      asset_partitions=[backfill_key]), limit=5).records}
            assert done == {"filtered_pairs"}
            assert instance.get_materialized_partitions(dg.AssetKey("filtered_pairs_drop_log")) >= {backfill_key}

    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
