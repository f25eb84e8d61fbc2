"""CLIP scoring core (no Dagster): ClipConfig -> ClipScorer.load() -> score_shard(...) -> ScoreResult.

Names resolve lazily (PEP 562): importing `laion_assets.core.clip.checks`, `.config` or `.thresholds`
(as the definitions and the filter do) must not import torch; only the CLIP step that scores pays.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClipConfig": "laion_assets.core.clip.config",
    "MemoryBudgetExceeded": "laion_assets.core.clip.model",
    "ClipScorer": "laion_assets.core.clip.scoring",
    "ScoreResult": "laion_assets.core.clip.scoring",
    "embedding_table": "laion_assets.core.clip.scoring",
    "InputPipelineError": "laion_assets.core.clip.inputs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
