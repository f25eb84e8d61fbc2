"""Takedown expansion: for each row a release removed, its nearest neighbours in the new version
(by CLIP image embedding, and every row within the PDQ match threshold) as CANDIDATES for a
reviewer to confirm. Nothing here removes anything: a confirmed candidate becomes a removal request
like any other. The removed rows' embeddings come from the previous version's index (the new one,
by construction, no longer holds them)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from laion_assets.core.search import index as knn
from laion_assets.core.search.pdq import PdqTable

DEFAULT_NEIGHBOURS = 10
DEFAULT_MIN_SIMILARITY = 0.9
CANDIDATE_SCHEMA = pa.schema([
    ("removed_sample_id", pa.int64()), ("candidate_sample_id", pa.int64()), ("via", pa.string()),
    ("similarity", pa.float32()), ("pdq_distance", pa.int32()),
])


def takedown_candidates(removed_ids: np.ndarray, removed_vectors: np.ndarray, removed_pdq: list[str | None],
                        new_index, new_ids: np.ndarray, new_pdq: PdqTable, *, k: int = DEFAULT_NEIGHBOURS,
                        min_similarity: float = DEFAULT_MIN_SIMILARITY) -> pa.Table:
    """(removed, candidate, via embedding|pdq, similarity, pdq_distance) rows, nearest first per removed row."""
    rows: dict[tuple[int, int], dict] = {}
    if len(removed_ids) and new_index.ntotal:
        sims, idx = knn.search(new_index, removed_vectors, k)
        for r, srow, irow in zip(removed_ids, sims, idx):
            for s, i in zip(srow, irow):
                if i >= 0 and s >= min_similarity:
                    rows[(int(r), int(new_ids[i]))] = {"removed_sample_id": int(r), "candidate_sample_id": int(new_ids[i]),
                                                       "via": "embedding", "similarity": float(s), "pdq_distance": None}
    for n, (r, h) in enumerate(zip(removed_ids, removed_pdq)):
        if not h:
            continue
        for i, d in new_pdq.matches(h):
            key = (int(r), int(new_ids[i]))
            sim = float(new_index.reconstruct(i) @ knn.unit_rows(removed_vectors[n : n + 1])[0])
            rows[key] = {**rows.get(key, {"removed_sample_id": key[0], "candidate_sample_id": key[1]}),
                         "via": "pdq" if key not in rows else "embedding+pdq", "similarity": sim, "pdq_distance": d}
    out = sorted(rows.values(), key=lambda x: (x["removed_sample_id"], -(x["similarity"] or 0), x["candidate_sample_id"]))
    return pa.Table.from_pylist(out, schema=CANDIDATE_SCHEMA)
