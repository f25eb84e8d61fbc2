"""CLIP scoring core (no Dagster): ClipConfig -> ClipScorer.load() -> score_shard(...) -> ScoreResult.

Names resolve lazily (PEP 562): importing `laion_assets.core.clip.checks` or `.config` (as the
definitions do) must not import torch; only the CLIP step that scores pays for it.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ClipConfig": "laion_assets.core.clip.config",
    "MemoryBudgetExceeded": "laion_assets.core.clip.model",
    "ClipScorer": "laion_assets.core.clip.scoring",
    "ScoreResult": "laion_assets.core.clip.scoring",
    "embedding_table": "laion_assets.core.clip.scoring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
