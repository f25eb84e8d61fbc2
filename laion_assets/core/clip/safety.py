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

    @property
    def k(self) -> int:
        return min(self.top_k, len(self.embeddings))

    def scores(self, image_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """On the device, no host sync: (punsafe float32 [n], unsafe prompts among the top k, int [n])."""
        sims = image_emb.float() @ self.embeddings.T
        punsafe = torch.softmax(sims * self.temperature, dim=-1)[:, : self.n_unsafe].sum(dim=-1)
        n_bad = (sims.topk(self.k, dim=-1).indices < self.n_unsafe).sum(dim=-1)
        return punsafe, n_bad

    def tags_from_counts(self, n_bad: list[int]) -> list[str]:
        k = self.k
        return ["NSFW" if b == k else "UNSURE" if b > 0 else "UNLIKELY" for b in n_bad]

    def tag(self, image_emb: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """image_emb: unit-norm float32 [n, d] -> (punsafe float32 [n] on CPU, tags)."""
        punsafe, n_bad = self.scores(image_emb)
        return punsafe.cpu(), self.tags_from_counts(n_bad.cpu().tolist())
