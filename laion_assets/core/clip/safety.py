"""Crawl-time safety tags from the image embedding alone (a heuristic, like LAION's crawl-time tag).

The image embedding is compared with embeddings of generic unsafe and safe concept prompts
(config.NSFW_UNSAFE_PROMPTS / NSFW_SAFE_PROMPTS). Tag: among the `top_k` most similar prompts, all
unsafe -> NSFW, some -> UNSURE, none -> UNLIKELY. `punsafe` = softmax over all prompts (temperature =
the model's logit scale) summed over the unsafe ones. It is only as good as the model's zero-shot
ability and the prompt lists; a trained detector on the stored embeddings should replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SafetyPrompts:
    """Unit-norm prompt embeddings (float32, on the device), unsafe first."""

    embeddings: torch.Tensor
    n_unsafe: int
    top_k: int
    temperature: float

    def tag(self, image_emb: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """image_emb: unit-norm float32 [n, d] -> (punsafe float32 [n], tags)."""
        if len(image_emb) == 0:
            return torch.zeros(0), []
        sims = image_emb.float() @ self.embeddings.T
        probs = torch.softmax(sims * self.temperature, dim=-1)
        punsafe = probs[:, : self.n_unsafe].sum(dim=-1)
        k = min(self.top_k, sims.shape[1])
        top = sims.topk(k, dim=-1).indices
        n_bad = (top < self.n_unsafe).sum(dim=-1).tolist()
        tags = ["NSFW" if b == k else "UNSURE" if b > 0 else "UNLIKELY" for b in n_bad]
        return punsafe.cpu(), tags
