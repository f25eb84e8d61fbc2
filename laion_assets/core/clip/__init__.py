"""CLIP scoring core (no Dagster): ClipConfig -> ClipScorer.load() -> score_shard(...) -> ScoreResult."""

from laion_assets.core.clip.config import ClipConfig
from laion_assets.core.clip.model import MemoryBudgetExceeded
from laion_assets.core.clip.scoring import ClipScorer, ScoreResult, embedding_table

__all__ = ["ClipConfig", "ClipScorer", "MemoryBudgetExceeded", "ScoreResult", "embedding_table"]
