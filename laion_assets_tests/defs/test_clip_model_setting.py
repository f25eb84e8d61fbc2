"""An unknown LAION_CLIP_MODEL fails when definitions load, naming the setting, without torch."""

import subprocess
import sys
from pathlib import Path

import pytest

from laion_assets.definitions import build_definitions
from laion_assets.defs.clip.resources import known_clip_models
from laion_assets.settings import load_settings
from laion_assets_tests.conftest import REPO


def test_known_models_match_open_clip_and_include_the_tiny_model():
    import open_clip

    from laion_assets.weights import TINY_MODEL_NAME, register_tiny_model

    register_tiny_model()
    known = known_clip_models()
    # list_models() also names configs other tests registered at run time (open_clip.add_model_config):
    # every packaged name is known, and nothing is known that open_clip cannot build.
    packaged = {p.stem for p in (Path(open_clip.__file__).parent / "model_configs").glob("*.json")}
    assert packaged and known == packaged | {TINY_MODEL_NAME}
    assert known <= set(open_clip.list_models())


def test_unknown_model_fails_at_load_naming_the_setting(embedded_env, monkeypatch):
    monkeypatch.setenv("LAION_CLIP_MODEL", "ViT-B-33")
    with pytest.raises(Exception, match="LAION_CLIP_MODEL") as err:
        build_definitions(load_settings())
    assert "ViT-B-32" in str(err.value)  # a close match is suggested
    monkeypatch.setenv("LAION_CLIP_MODEL", "ViT-B-32")
    build_definitions(load_settings())


def test_definitions_load_without_importing_torch(embedded_env):
    code = ("import sys, laion_assets.definitions as d; "
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'torch imported at load'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
