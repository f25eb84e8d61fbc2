import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (as CI clones it), or LAION_REAL_WARC_DIR (worktrees, other layouts).
REAL_WARC_DIR = Path(os.environ.get("LAION_REAL_WARC_DIR") or REPO.parent / "shared" / "data" / "real-warc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
