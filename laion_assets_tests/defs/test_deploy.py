"""Every shipped instance config in deploy/ loads: Dagster's instance schema, then each configurable
class (storage, run launcher, coordinator, compute logs) imported and its own config validated."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer

from laion_assets_tests.conftest import REPO

CONFIGS = sorted((REPO / "deploy").rglob("*.yaml"))
CLASS_SECTIONS = ("run_launcher", "run_coordinator", "compute_logs", "run_storage", "event_log_storage",
                  "schedule_storage", "local_artifact_storage")


def test_deploy_ships_ecs_k8s_and_local_configs():
    names = {p.relative_to(REPO / "deploy").as_posix() for p in CONFIGS}
    assert {"ecs/dagster.yaml", "k8s/dagster.yaml", "local/dagster.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_instance_config_loads(path: Path, tmp_path: Path, monkeypatch):
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
                "LAION_DAGSTER_LOGS_BUCKET"):
        monkeypatch.setenv(var, "x")
    config, _ = dagster_instance_config(str(path.parent), path.name)
    for section in CLASS_SECTIONS:
        if section in config:
            klass = class_from_code_pointer(config[section]["module"], config[section]["class"])
            result = validate_config(klass.config_type(), config[section].get("config") or {})
            assert result.success, f"{path}: {section}: {[e.message for e in result.errors]}"
    if "storage" in config and "postgres" in config["storage"]:
        from dagster_postgres import DagsterPostgresStorage

        result = validate_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
        assert result.success, [e.message for e in result.errors]
    assert config["concurrency"]["pools"]["default_limit"] >= 1  # the gpu pool's limit
    if path.parent.name in ("ecs", "k8s"):
        assert "postgres" in config["storage"] and "S3ComputeLogManager" == config["compute_logs"]["class"]
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which is not installed (-m postgres runs it)
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
        assert any(t["key"] == "laion-assets/gpu" for t in config["concurrency"]["runs"]["tag_concurrency_limits"])


def test_local_config_makes_an_instance_with_the_gpu_pool_limit(tmp_path: Path):
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        info = instance.event_log_storage.get_concurrency_info("gpu")
        assert info.limit == 1  # from the shipped config's pool default, no code involved
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
