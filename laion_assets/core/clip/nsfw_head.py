"""A trained NSFW head on stored CLIP image embeddings (like LAION's CLIP-based-NSFW-Detector).

The CLIP stage's `punsafe` comes from zero-shot prompts, a heuristic. When a trained head is
configured, the filter stage replaces `punsafe` with the head's probability computed from the shard's
stored float16 image embeddings: no re-download, no re-scoring.

Checkpoint format (`torch.save` of a dict): `layers`: list of (weight [out, in], bias [out]) tensors
of a ReLU MLP whose last layer has one output (a logit); `clip_model_id`: the CLIP model whose
embeddings it was trained on (a head is only valid on that model's embedding space); optional `name`.
Inference is plain numpy, so loading a head needs torch only to unpickle the checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NsfwHead:
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    clip_model_id: str
    head_id: str

    @property
    def embed_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    def punsafe(self, embeddings: np.ndarray) -> np.ndarray:
        """[n, d] embeddings -> float32 [n] probabilities of unsafe."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"NSFW head {self.head_id} takes [n, {self.embed_dim}] embeddings, got {embeddings.shape}")
        x = embeddings.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return (0.5 * (1.0 + np.tanh(0.5 * x[:, 0]))).astype(np.float32)  # sigmoid, no overflow


def load_nsfw_head(path: str | Path) -> NsfwHead:
    import torch

    path = Path(path)
    data = path.read_bytes()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    try:
        layers = tuple(
            (np.asarray(w.float().numpy()), np.asarray(b.float().numpy())) for w, b in ckpt["layers"]
        )
        model_id = str(ckpt["clip_model_id"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not an NSFW head checkpoint (needs 'layers' and 'clip_model_id'): {e}") from e
    if not layers or layers[-1][0].shape[0] != 1:
        raise ValueError(f"{path}: the head's last layer must have one output")
    for (w1, _), (w2, _) in zip(layers, layers[1:]):
        if w2.shape[1] != w1.shape[0]:
            raise ValueError(f"{path}: layer shapes do not chain ({w1.shape} then {w2.shape})")
    name = str(ckpt.get("name") or path.stem)
    return NsfwHead(layers, model_id, f"head:{name}@{hashlib.sha256(data).hexdigest()[:12]}")
