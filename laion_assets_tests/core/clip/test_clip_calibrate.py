"""The calibration command: a new model's threshold keeps the reference's share of the same pairs."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest

from laion_assets import weights as models
from laion_assets.core.clip import calibrate

TINY = ["--reference-model", models.TINY_MODEL_NAME, "--reference-pretrained", str(models.TINY_CHECKPOINT)]


def test_match_share_keeps_the_same_count():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 0.5, 101)
    new = ref * 0.6 + 0.1 + rng.normal(0, 0.01, 101)  # another scale, another offset
    t = calibrate.match_share(ref, np.full(101, 0.28), new)
    assert np.sum(new >= t) == np.sum(ref >= 0.28)
    assert calibrate.match_share(ref, np.full(101, 9.0), new) > new.max()  # keeps none
    assert calibrate.match_share(ref, np.full(101, -9.0), new) == new.min()  # keeps all
    with pytest.raises(ValueError, match="same non-empty pairs"):
        calibrate.match_share(ref, np.full(101, 0.28), new[:5])


def test_tiny_model_against_itself_keeps_the_same_pairs(capsys):
    res = calibrate.main(["--model", models.TINY_MODEL_NAME, "--pretrained", str(models.TINY_CHECKPOINT),
                          *TINY, "--synthetic", "24", "--device", "cpu"])
    assert res.pairs == 24 and res.model_id == res.reference_model_id == "laion-tiny@laion-tiny.pt"
    # half the captions match: the tiny model keeps those (>= 0.28) and the new threshold the same set
    assert res.kept_by_model == res.kept_by_reference == res.kept_by_both
    assert 6 <= res.kept_by_reference <= 18
    out = capsys.readouterr().out
    assert "ModelThresholds('laion-tiny@laion-tiny.pt'" in out and "calibrated: same kept share" in out


def test_another_model_gets_the_reference_share(tmp_path, capsys):
    name = "clip-calib-small"
    if name not in open_clip.list_models():
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps({"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64,
                                                                   "patch_size": 16},
                                   "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32,
                                                "heads": 2, "layers": 1}}))
        open_clip.add_model_config(cfg)
    res = calibrate.main(["--model", name, "--pretrained", "none", *TINY, "--synthetic", "24", "--device", "cpu",
                          "--json"])
    assert res.model_id == f"{name}@random" and res.pairs == 24
    assert res.kept_by_model == res.kept_by_reference  # the quantile match
    assert json.loads(capsys.readouterr().out)["threshold"] == res.threshold
