"""The dbt project, located once and parsed on first use so definitions always load."""

import os
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

DBT_DIR = Path(os.environ.get("LAION_DBT_PROJECT_DIR", Path(__file__).resolve().parents[3] / "dbt"))


@cache
def dbt_project() -> DbtProject:
    """`dagster dev` re-parses on reload; elsewhere (tests, CI, the demo) parse once if no manifest."""
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
    project.prepare_if_dev()
    if not project.manifest_path.exists():
        project.preparer.prepare(project)
    return project
