"""Pure-Python extraction core: WARC/WAT -> image-text pairs (no Dagster). See docs/extraction.md."""

from .config import BAD_RECORD_REASONS, DROP_REASONS, ExtractConfig, TooManyBadRecords
from .shard import ExtractResult, extract_shard, stats_table

__all__ = [
    "BAD_RECORD_REASONS",
    "DROP_REASONS",
    "ExtractConfig",
    "ExtractResult",
    "TooManyBadRecords",
    "extract_shard",
    "stats_table",
]
