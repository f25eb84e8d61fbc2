"""The shipped production instance configs (deploy/ecs, deploy/k8s) start on a real PostgreSQL
server on 127.0.0.1 and carry a crawl, its shards and a publish; per-shard check status, the
progress view and partition deletion work on that storage.

What is swapped (`laion_assets.testing.postgres.deploy_instance_yaml`): the Postgres port (a free
one), the run launcher (ECS/K8s -> Dagster's DefaultRunLauncher; runs here execute in process, so
it launches nothing) and the compute-log bucket's endpoint (moto's S3 on loopback). Storage
driver and URL scheme, coordinator, pools and retries are the shipped files'.

Not in the default run (`-m postgres`): needs PostgreSQL's binaries (scripts/install_postgres.sh).
"""

from pathlib import Path

import dagster as dg
import pytest

from laion_assets import ops
from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.defs.automation.progress import crawl_progress
from laion_assets.defs.automation.shard_status import shard_check_status
from laion_assets.definitions import build_definitions
from laion_assets.runner import run_pipeline
from laion_assets.settings import load_settings
from laion_assets.testing.postgres import deploy_instance_yaml, postgres_server
from laion_assets.testing.s3 import moto_s3
from laion_assets_tests.conftest import REPO

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("deploy", ["ecs", "k8s"])
def test_deploy_config_runs_shards_and_a_publish_on_postgres(deploy, embedded_env, tmp_path: Path, monkeypatch):
    with postgres_server() as pg, moto_s3() as s3:
        for k, v in {**pg.env, "LAION_DAGSTER_LOGS_BUCKET": s3.create_bucket("dagster-logs")}.items():
            monkeypatch.setenv(k, v)
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text(deploy_instance_yaml(REPO / "deploy" / deploy / "dagster.yaml", pg,
                                                                s3_endpoint_url=s3.endpoint_url))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:  # what the webserver, daemon and run workers call
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            defs = build_definitions(load_settings())
            run = run_pipeline(defs, instance, log_level="WARNING")
            assert run.release_rows and run.release_rows > 0 and len(run.partition_keys) >= 2
            assert instance.get_runs_count() == len(run.run_ids)

            names = [c.name for c in FILTER_CHECKS]
            for key in run.partition_keys:  # one status per shard, recorded in Postgres
                statuses = shard_check_status(instance, "filtered_pairs", names, key)
                assert {s.partition for s in statuses} == {key}
                assert all(s.status == "SUCCEEDED" for s in statuses if s.check in
                           {c.name for c in FILTER_CHECKS if c.blocking})
            (progress,) = crawl_progress(instance)
            assert progress.done == progress.registered == len(run.partition_keys) and progress.pairs > 0

            instance.add_dynamic_partitions("shards", ["CC-MAIN-2099-01/00000"])
            assert ops.main(["partitions", "delete", "CC-MAIN-2099-01/00000"], instance=instance) == 0
            assert sorted(instance.get_dynamic_partitions("shards")) == run.partition_keys
