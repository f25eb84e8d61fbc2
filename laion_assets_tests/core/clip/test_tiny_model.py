"""The checked-in tiny CLIP must separate matched from mismatched pairs in ABSOLUTE cosine.

Downstream filtering uses LAION's fixed thresholds (0.28 English / 0.26 other), so
tests and the offline demo only mean something if matched pairs score well above
and fully mismatched pairs well below them. Held-out seeds are never used in training.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from laion_assets.core.sample import synthetic
from laion_assets.weights import TINY_CHECKPOINT, TINY_MODEL_NAME, checkpoint_sha256, register_tiny_model

open_clip = pytest.importorskip("open_clip")

HELDOUT_SEED = 2_000_000_017  # training seeds are < 1e9 (see scripts/train_tiny_clip.py)
N = 64


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    register_tiny_model()
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL_NAME, pretrained=str(TINY_CHECKPOINT))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(TINY_MODEL_NAME)


@pytest.fixture(scope="module")
def scores(tiny):
    model, preprocess, tok = tiny
    pairs = synthetic.sample_pairs(N, seed=HELDOUT_SEED)
    # Same lossy path as production: JPEG round trip (download stage) then the model's val preprocess.
    imgs = torch.stack([preprocess(Image.open(io.BytesIO(_jpeg(p.image))).convert("RGB")) for p in pairs])
    bad = [synthetic.mismatched(p.color, p.shape, seed=i) for i, p in enumerate(pairs)]
    with torch.no_grad():
        ie = F.normalize(model.encode_image(imgs), dim=-1)
        good = (ie * F.normalize(model.encode_text(tok([p.text for p in pairs])), dim=-1)).sum(-1)
        wrong_txt = [synthetic.caption(c, s, seed=i) for i, (c, s) in enumerate(bad)]
        wrong = (ie * F.normalize(model.encode_text(tok(wrong_txt)), dim=-1)).sum(-1)
    return good, wrong


def test_register_is_idempotent():
    register_tiny_model()
    register_tiny_model()
    assert open_clip.list_models().count(TINY_MODEL_NAME) == 1


def test_checkpoint_small_and_hashable():
    assert TINY_CHECKPOINT.stat().st_size < 8 * 1024 * 1024
    assert len(checkpoint_sha256(TINY_CHECKPOINT)) == 64


def test_matched_pairs_score_high(scores):
    good, _ = scores
    assert good.min().item() >= 0.30, good.sort().values[:5]


def test_mismatched_pairs_score_low(scores):
    _, wrong = scores
    assert wrong.max().item() < 0.24, wrong.sort().values[-5:]


def test_rendered_jpegs_pass_download_size_filter():
    for p in synthetic.sample_pairs(16, seed=HELDOUT_SEED + 1):
        assert len(_jpeg(p.image)) > 5000
        assert p.image.size == (256, 256) and p.image.mode == "RGB"


def test_render_is_deterministic():
    a = synthetic.render_image("red", "star", seed=7)
    b = synthetic.render_image("red", "star", seed=7)
    c = synthetic.render_image("red", "star", seed=8)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_captions_and_mismatch():
    for i in range(50):
        c, s = list(synthetic.COLORS)[i % 8], synthetic.SHAPES[i % 6]
        text = synthetic.caption(c, s, seed=i)
        assert len(text) >= 5 and c in text and s in text
        mc, ms = synthetic.mismatched(c, s, seed=i)
        assert mc != c and ms != s
    a, b = synthetic.sample_pairs(4, seed=1), synthetic.sample_pairs(4, seed=2)
    assert [p.image.tobytes() for p in a] != [p.image.tobytes() for p in b]
