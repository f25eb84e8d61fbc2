"""Text padding trimmed to the batch's longest caption gives the full-context embeddings, exactly.

Proved on real open_clip towers: the project's tiny checkpoint and ViT-B-32's own text tower
(context 77, random weights), against `model.encode_text` on the padded tokens.
"""

from __future__ import annotations

import open_clip
import pytest
import torch

from laion_assets import weights as models
from laion_assets.core.clip.text import encode_text, pooled_positions, trim_tokens

CAPTIONS = ["a red square", "x", "", "a photo of a dog running on the beach at sunset with a frisbee in its mouth",
            "Ein rotes Quadrat auf blauem Grund", "🙂 émoji and ümlauts", "a " * 60]


@pytest.fixture(scope="module", params=["tiny", "ViT-B-32"])
def tower(request):
    torch.manual_seed(0)
    if request.param == "tiny":
        name = models.register_tiny_model()
        model = open_clip.create_model(name, pretrained=str(models.TINY_CHECKPOINT))
    else:
        name = "ViT-B-32"
        model = open_clip.create_model(name, pretrained=None)
    return model.eval(), open_clip.get_tokenizer(name)


def test_trimmed_text_embeddings_equal_full_context(tower):
    model, tokenizer = tower
    torch.set_num_threads(1)
    for batch in (CAPTIONS[:3], CAPTIONS[:5], CAPTIONS):  # short batches trim most; the last barely
        tokens = tokenizer(batch)
        trimmed = trim_tokens(model, tokens)
        assert trimmed.shape[1] == int(tokens.argmax(-1).max()) + 1
        assert torch.equal(tokens[:, trimmed.shape[1]:], torch.zeros_like(tokens[:, trimmed.shape[1]:]))
        with torch.inference_mode():
            full = model.encode_text(tokens)
            short = encode_text(model, trimmed)
        torch.testing.assert_close(short, full, rtol=0, atol=1e-5)
    assert trim_tokens(model, tokenizer(CAPTIONS[:2])).shape[1] < model.positional_embedding.shape[0] // 4


def test_towers_where_trimming_is_not_exact_are_left_alone(tower):
    model, tokenizer = tower
    tokens = tokenizer(CAPTIONS[:2])
    mask = model.attn_mask
    try:
        model.attn_mask = None  # bidirectional attention would see the padding
        assert pooled_positions(model, tokens) is None and trim_tokens(model, tokens) is tokens
    finally:
        model.attn_mask = mask
    pool = model.text_pool_type
    try:
        model.text_pool_type = "last"  # pools at the last column, which trimming moves
        assert trim_tokens(model, tokens) is tokens
    finally:
        model.text_pool_type = pool
