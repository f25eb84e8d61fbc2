"""CLIP scoring core (no Dagster): ClipConfig -> ClipScorer.load() -> score_shard(...) -> ScoreResult.

Names are imported lazily so `laion_assets.core.clip.thresholds` (used by the filter) does not pull
in torch and open_clip.
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
