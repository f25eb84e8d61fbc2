"""PDQ matching of one query hash against every indexed row, vectorized: each 256-bit hash is four
uint64 words, the distance is the popcount of the XOR. At 1M rows that is a 32 MB scan (~10 ms),
cheap beside the CLIP forward, so no multi-index hashing is needed at this scale. The threshold and
quality floor are the takedown path's own (core/removal/entries.py)."""

from __future__ import annotations

import numpy as np

from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY


def words(hashes: list[str | None]) -> np.ndarray:
    """(n, 4) uint64; a missing or malformed hash becomes all-ones words flagged by `valid`."""
    out = np.zeros((len(hashes), 4), np.uint64)
    for i, h in enumerate(hashes):
        if h and len(h) == 64:
            try:
                out[i] = [int(h[j : j + 16], 16) for j in range(0, 64, 16)]
            except ValueError:
                pass
    return out


class PdqTable:
    """Every row's PDQ words and whether the row's hash is usable (present, quality >= the floor)."""

    def __init__(self, hashes: list[str | None], qualities: list[int | None], *,
                 min_quality: int = PDQ_MIN_QUALITY):
        self.words = words(hashes)
        self.valid = np.array([bool(h) and len(h) == 64 and (q or 0) >= min_quality
                               for h, q in zip(hashes, qualities)], bool)

    def distances(self, query: str) -> np.ndarray:
        q = words([query])[0]
        return np.bitwise_count(self.words ^ q).sum(axis=1).astype(np.int32)

    def matches(self, query: str, *, max_distance: int = PDQ_MAX_DISTANCE) -> list[tuple[int, int]]:
        """(row, distance) of every usable row within max_distance, nearest first (row breaks ties)."""
        d = self.distances(query)
        rows = np.flatnonzero(self.valid & (d <= max_distance))
        order = np.lexsort((rows, d[rows]))
        return [(int(rows[i]), int(d[rows[i]])) for i in order]
