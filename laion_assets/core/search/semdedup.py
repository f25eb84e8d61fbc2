"""Semantic dedup (SemDeDup, Abbas et al. 2023; as DataComp and NeMo Curator run it): k-means the
unit image embeddings, and inside each cluster drop every row whose cosine similarity to a
better-ranked row of the same cluster is at least `min_cosine`; the best-scored row of each group of
near-duplicates is the one kept. Rank = score descending, then SAMPLE_ID ascending, so the result is
the same wherever it runs; k-means has a fixed seed. Only pairs inside a cluster are compared, so the
cost is the sum of squared cluster sizes, not n^2 (measured in bench/search.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa

from laion_assets.core.search.index import set_threads, unit_rows

REASON = "semantic_duplicate"
DEFAULT_MIN_COSINE = 0.95  # SemDeDup's eps = 0.05
DEFAULT_SEED = 1234
BLOCK_ROWS = 2048  # rows of a cluster's similarity matrix computed at once (memory: BLOCK_ROWS x size)


MIN_POINTS_PER_CLUSTER = 39  # faiss k-means warns (and trains poorly) below 39 points per centroid


def default_clusters(n: int) -> int:
    """~sqrt(n) clusters, at least 1 and never fewer than 39 points each (k-means needs points per
    centroid); a small release is one cluster, i.e. every pair compared (exact)."""
    return max(1, min(int(math.sqrt(n)), n // MIN_POINTS_PER_CLUSTER))


@dataclass(frozen=True)
class SemDedupResult:
    cluster: np.ndarray  # (n,) int64 cluster of each row
    duplicate_of: np.ndarray  # (n,) int64: index of the better-ranked row it duplicates, -1 if kept
    max_similarity: np.ndarray  # (n,) float32: its highest similarity to a better-ranked row (-1 if none)

    @property
    def dropped(self) -> np.ndarray:
        return self.duplicate_of >= 0


def semantic_dedup(embeddings: np.ndarray, scores: np.ndarray, ids: np.ndarray | None = None, *,
                   min_cosine: float = DEFAULT_MIN_COSINE, n_clusters: int | None = None,
                   seed: int = DEFAULT_SEED, niter: int = 20) -> SemDedupResult:
    """Which rows are semantic duplicates of a better-ranked row in their cluster (see module doc)."""
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be within [-1, 1], got {min_cosine}")
    x = unit_rows(embeddings)
    n = len(x)
    scores = np.asarray(scores, np.float64)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    if len(scores) != n or len(ids) != n:
        raise ValueError(f"{n} embeddings, {len(scores)} scores, {len(ids)} ids")
    cluster = np.zeros(n, np.int64)
    duplicate_of = np.full(n, -1, np.int64)
    max_sim = np.full(n, -1.0, np.float32)
    if n < 2:
        return SemDedupResult(cluster, duplicate_of, max_sim)
    k = n_clusters or default_clusters(n)
    set_threads()
    if k > 1:
        km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                          max_points_per_centroid=256)
        km.train(x)
        cluster = km.index.search(x, 1)[1][:, 0].astype(np.int64)
    # Rows grouped by cluster, ranked inside it: score descending, id ascending (NaN scores last).
    order = np.lexsort((ids, -np.nan_to_num(scores, nan=-np.inf), cluster))
    bounds = np.flatnonzero(np.diff(cluster[order])) + 1
    for members in np.split(order, bounds):
        m = len(members)
        if m < 2:
            continue
        v = x[members]
        for a in range(1, m, BLOCK_ROWS):
            b = min(m, a + BLOCK_ROWS)
            sim = v[a:b] @ v[:b].T  # rows a..b against every better-or-equal-ranked row
            sim[np.arange(b)[None, :] >= np.arange(a, b)[:, None]] = -2.0  # only better-ranked columns
            best = sim.argmax(axis=1)
            top = sim[np.arange(b - a), best]
            max_sim[members[a:b]] = np.maximum(top, -1.0)
            hit = top >= min_cosine
            duplicate_of[members[a:b][hit]] = members[best[hit]]
    return SemDedupResult(cluster, duplicate_of, max_sim)


def drop_rows(sample_ids: np.ndarray, result: SemDedupResult) -> pa.Table:
    """The drop log's rows (sample_id, reason) plus which kept row each duplicates (for the card)."""
    idx = np.flatnonzero(result.dropped)
    sample_ids = np.asarray(sample_ids, np.int64)
    return pa.table({
        "sample_id": pa.array(sample_ids[idx], pa.int64()),
        "reason": pa.array([REASON] * len(idx), pa.string()),
        "duplicate_of": pa.array(sample_ids[result.duplicate_of[idx]], pa.int64()),
        "similarity": pa.array(result.max_similarity[idx], pa.float32()),
    })
