"""The dbt project, located once and parsed on first use so definitions always load."""

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_DIR = Path(os.environ.get("LAION_DBT_PROJECT_DIR", Path(__file__).resolve().parents[3] / "dbt"))


def dbt_executable() -> str:
    """The `dbt` beside the running interpreter (an unactivated venv has it off PATH), else PATH's."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if not found:
        raise FileNotFoundError("dbt is not installed: `pip install -e .` installs dbt-core and dbt-duckdb")
    return found


@cache
def dbt_project() -> DbtProject:
    """`dagster dev` re-parses on reload; elsewhere (tests, CI, the demo) parse once if no manifest."""
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
    project.prepare_if_dev()
    if not project.manifest_path.exists():
        dbt_cli(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def dbt_cli(project: DbtProject | None = None) -> DbtCliResource:
    return DbtCliResource(project_dir=project or dbt_project(), dbt_executable=dbt_executable())
