"""The dbt project, located once; its manifest is parsed with the project's own `dbt` when stale.

dagster-dbt's `prepare_if_dev` runs `dbt parse` with whatever `dbt` is on PATH (none when the venv
is not activated: the code location then fails to load under `dagster dev`), and does so in every
process (each run worker re-parses). We parse instead with the `dbt` beside the interpreter, only
when the manifest is missing or older than a file of the dbt project, under a file lock so parallel
processes parse once.
"""

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from filelock import FileLock

from laion_assets.core.release.rules import dbt_vars
from laion_assets.settings import load_settings

DBT_DIR = Path(load_settings().dbt_project_dir or Path(__file__).resolve().parents[3] / "dbt")
# What `dbt parse` reads: a change to any of these makes the manifest stale.
SOURCE_DIRS = ("models", "tests", "macros", "seeds", "snapshots", "analyses")
SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")
PARSE_TIMEOUT_S = 300


def dbt_executable() -> str:
    """The `dbt` beside the running interpreter (an unactivated venv has it off PATH), else PATH's."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if not found:
        raise FileNotFoundError("dbt is not installed: `pip install -e .` installs dbt-core and dbt-duckdb")
    return found


def newest_source_mtime(project_dir: Path) -> float:
    """The newest modification time among the files `dbt parse` reads."""
    paths = [project_dir / f for f in SOURCE_FILES]
    for d in SOURCE_DIRS:
        if (project_dir / d).is_dir():
            paths += [p for p in (project_dir / d).rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def project_digest(project_dir: Path = DBT_DIR) -> str:
    """A digest of the dbt project's logic (models, tests, macros, seeds, ..., `dbt_project.yml`;
    not `profiles.yml`, which says where, not what): a release index records the digest it was
    derived from, and a re-derive on another digest takes the full build (`defs/removal/fast_path.py`)."""
    import hashlib

    h = hashlib.sha256()
    paths = [project_dir / f for f in SOURCE_FILES if f != "profiles.yml"]
    for d in SOURCE_DIRS:
        if (project_dir / d).is_dir():
            paths += sorted(p for p in (project_dir / d).rglob("*") if p.is_file())
    for p in paths:
        if p.is_file():
            h.update(p.relative_to(project_dir).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return "dbt-" + h.hexdigest()[:16]


def manifest_is_fresh(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= newest_source_mtime(project.project_dir)


def prepare_manifest(project: DbtProject) -> bool:
    """Run `dbt parse` if the manifest is missing or stale; True when it parsed."""
    if manifest_is_fresh(project):
        return False
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(project.manifest_path) + ".lock", timeout=PARSE_TIMEOUT_S):
        if manifest_is_fresh(project):  # another process parsed while we waited
            return False
        env = {**os.environ, "DBT_PROFILES_DIR": str(project.profiles_dir)}
        out = subprocess.run(
            [dbt_executable(), "parse", "--quiet", "--project-dir", str(project.project_dir),
             "--profiles-dir", str(project.profiles_dir), "--target-path", str(project.target_path),
             *vars_args(load_settings().root)],
            cwd=project.project_dir, env=env, capture_output=True, text=True, timeout=PARSE_TIMEOUT_S,
        )
        if out.returncode != 0 or not project.manifest_path.exists():
            raise RuntimeError(
                f"`dbt parse` of {project.project_dir} failed (exit {out.returncode}):\n{out.stdout}{out.stderr}"
            )
        return True


def vars_args(root_uri: str) -> list[str]:
    """`--vars` with every value the dbt project reads (source globs, release rules): declared once
    in Python (core/release/rules.py, core/storage/layout.py), never as defaults in the SQL."""
    return ["--vars", json.dumps(dbt_vars(root_uri), sort_keys=True)]


@cache
def dbt_project() -> DbtProject:
    """Never calls `prepare_if_dev` (PATH's dbt, every process); `prepare_manifest` covers dev too."""
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
    prepare_manifest(project)
    return project


def dbt_cli(project: DbtProject | None = None) -> DbtCliResource:
    return DbtCliResource(project_dir=project or dbt_project(), dbt_executable=dbt_executable())
