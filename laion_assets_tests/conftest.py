import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from laion_assets.runner import PipelineRun

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (as CI clones it), or LAION_REAL_WARC_DIR (worktrees, other layouts).
REAL_WARC_DIR = Path(os.environ.get("LAION_REAL_WARC_DIR") or REPO.parent / "shared" / "data" / "real-warc")


def free_port() -> int:
    """A free port that no live sample crawl on this host has reserved (an earlier session's kept tmp
    root still owns its port: `core/sample/ports.py`), so an explicit test port is never refused."""
    from laion_assets.core.sample.ports import PortRegistry

    registry = PortRegistry()
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if registry.live(port) is None:
            return port


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """Environment of the embedded default, rooted in a temporary directory with a free port."""
    env = {
        "LAION_ASSETS_PROFILE": "embedded",
        "LAION_ASSETS_ROOT": str(tmp_path / "data"),
        "LAION_SAMPLE_IMAGE_PORT": str(free_port()),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("LAION_CRAWL", "LAION_CRAWL_SOURCE", "LAION_CLIP_MODEL", "LAION_CLIP_PRETRAINED"):
        monkeypatch.delenv(k, raising=False)
    return env


# Variables that would point the embedded profile elsewhere (a real crawl, another model).
EMBEDDED_UNSET = ("LAION_CRAWL", "LAION_CRAWL_SOURCE", "LAION_CLIP_MODEL", "LAION_CLIP_PRETRAINED")
# The sample image server's lease file: its lock belongs to whatever process holds it, not to the data.
LEASE_SUFFIX = ".server-lease"


@dataclass(frozen=True)
class PublishedSample:
    """The embedded sample crawl run once and published (`published_sample`): the data root, the
    Dagster instance's directory, the run, and a copy of both taken right after it."""

    env: dict[str, str]
    root: Path
    home: Path
    snapshot: Path
    first: "PipelineRun"

    def restore(self) -> None:
        """Put the root and the instance back as the first publish left them, whatever ran since."""
        for live, saved in ((self.root, self.snapshot / "data"), (self.home, self.snapshot / "home")):
            for p in live.iterdir():
                if p.name.endswith(LEASE_SUFFIX):
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            shutil.copytree(saved, live, dirs_exist_ok=True, symlinks=True)


@pytest.fixture(scope="session")
def published_sample_base(tmp_path_factory: pytest.TempPathFactory) -> PublishedSample:
    """The whole embedded graph materialized ONCE per session (~35 s) for the tests that build on a
    published release (removal requests, re-derives). Tests use `published_sample`, which restores
    this state first, so no test sees what another one did."""
    import dagster as dg

    from laion_assets.definitions import build_definitions
    from laion_assets.runner import run_pipeline
    from laion_assets.settings import load_settings

    base = tmp_path_factory.mktemp("published-sample")
    env = {
        "LAION_ASSETS_PROFILE": "embedded",
        "LAION_ASSETS_ROOT": str(base / "data"),
        "LAION_SAMPLE_IMAGE_PORT": str(free_port()),
    }
    home = base / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:  # the environment is set only while the pipeline runs
        for k, v in env.items():
            mp.setenv(k, v)
        for k in EMBEDDED_UNSET:
            mp.delenv(k, raising=False)
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            first = run_pipeline(build_definitions(load_settings()), instance, log_level="WARNING")
    snapshot = base / "snapshot"
    ignore = shutil.ignore_patterns(f"*{LEASE_SUFFIX}")
    shutil.copytree(base / "data", snapshot / "data", symlinks=True, ignore=ignore)
    shutil.copytree(home, snapshot / "home", symlinks=True)
    return PublishedSample(env, base / "data", home, snapshot, first)


@pytest.fixture
def published_sample(published_sample_base: PublishedSample, monkeypatch) -> PublishedSample:
    """The session's published sample, restored to the state of its first publish, with the embedded
    environment set (open the instance with `dg.instance_for_test(temp_dir=str(.home))`)."""
    published_sample_base.restore()
    for k, v in published_sample_base.env.items():
        monkeypatch.setenv(k, v)
    for k in EMBEDDED_UNSET:
        monkeypatch.delenv(k, raising=False)
    return published_sample_base
