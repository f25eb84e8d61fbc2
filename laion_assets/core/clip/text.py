"""Text encoding at the batch's caption length instead of the model's full context (77 for ViT-B-32).

Web captions are short (a few to ~20 tokens) but open_clip pads every caption to the context length,
so the text tower (~45 % of a B/32 forward at 77 tokens) mostly attends over padding. For open_clip's
`CLIP` text tower the padding is provably inert: the attention mask is causal, so position i only
sees positions <= i, and the pooled feature is taken at the end-of-text token (argmax over token ids,
or the eos id), which comes before every pad. Cutting the trailing columns after the last pooled
position, and slicing the positional embedding and causal mask to match, gives the same embeddings
up to float summation order (tested in test_clip_text.py). Any other tower (HF text models, no causal
mask, last-token or mean pooling) gets the full-length path.
"""

from __future__ import annotations

from typing import Any

import torch


def pooled_positions(model: Any, tokens: torch.Tensor) -> torch.Tensor | None:
    """The token index the model pools at, per row; None when trimming would not be exact."""
    if not all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final")):
        return None
    if getattr(model, "attn_mask", None) is None:  # bidirectional attention: padding is seen
        return None
    pool = getattr(model, "text_pool_type", None)
    if pool == "argmax":
        return tokens.argmax(dim=-1)
    if pool == "eos" and getattr(model, "text_eos_id", None) is not None:
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return None


def trim_tokens(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """`tokens` with the trailing all-padding columns removed when that is exact for `model`."""
    pos = pooled_positions(model, tokens)
    if pos is None or tokens.shape[0] == 0:
        return tokens
    length = int(pos.max()) + 1
    return tokens[:, :length] if length < tokens.shape[1] else tokens


def encode_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip `CLIP.encode_text` for token rows of any length up to the context length."""
    n_ctx = tokens.shape[1]
    if n_ctx == model.positional_embedding.shape[0] or pooled_positions(model, tokens) is None:
        return model.encode_text(tokens)
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:n_ctx].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n_ctx, :n_ctx])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), pooled_positions(model, tokens)]
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x
