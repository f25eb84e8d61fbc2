"""The dataset card's img2dataset command, run as printed in a published release's folder, downloads
every row's image from the sample's server and verifies each against the release's sha256."""

import json
import os
import re
import subprocess

import pytest

from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets_tests.conftest import REPO

TOOLS = REPO / ".venv-tools" / "bin"


def _card_command(card: str) -> str:
    section = card.split("## Download the images", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.e2e
def test_the_cards_img2dataset_command_works_as_printed(published_sample):
    if not (TOOLS / "img2dataset").exists():  # CI installs it (scripts/install_tools.sh from .ci/run)
        subprocess.run(["bash", str(REPO / "scripts" / "install_tools.sh")], check=True, timeout=900)
    release = published_sample.first.release_dir
    command = _card_command((release / "README.md").read_text())
    server = SampleImageServerResource(enabled=True, root=str(published_sample.root), port=0)
    env = {**os.environ, "PATH": f"{TOOLS}:{os.environ['PATH']}", "NO_ALBUMENTATIONS_UPDATE": "1",
           "WANDB_MODE": "disabled", "NO_PROXY": "127.0.0.1,localhost"}
    work = release.parent / "img2dataset-run"
    work.mkdir(exist_ok=True)
    for part in release.glob("part-*.parquet"):  # `--url_list .` reads the folder it runs in
        (work / part.name).write_bytes(part.read_bytes())
    with server.lease():
        out = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    stats = [json.loads(p.read_text()) for p in (work / "images").glob("*_stats.json")]
    assert stats, out.stderr[-3000:]
    assert sum(s["successes"] for s in stats) == published_sample.first.release_rows
    assert sum(s["failed_to_download"] + s["failed_to_resize"] for s in stats) == 0
    saved = [json.loads(p.read_text()) for p in (work / "images").glob("*.json") if not p.name.endswith("_stats.json")]
    assert not saved or {"SAMPLE_ID", "similarity", "LICENSE"} <= set(saved[0])
