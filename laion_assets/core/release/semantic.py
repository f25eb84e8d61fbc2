"""Semantic dedup of one release variant (SemDeDup, `core/search/semdedup.py`), as an option per
variant (`ReleaseVariant.semdedup_min_cosine`).

It runs on the variant's rows after its NSFW policy, from what the pipeline stored: each row's
float16 image embedding is found through its shard (`core/search/build.py` `locate_rows`), no image
is re-read and no model runs. The score that decides which near-duplicate is kept is the row's
CLIP `similarity`; ties go to the smaller SAMPLE_ID and k-means has a fixed seed, so the same rows
drop the same ids every time. A row with no stored embedding cannot be compared and is kept
(counted as `rows_not_compared`). The dropped rows get the reason `semantic_duplicate`: in the
funnel and card, in the diff against the previous version, and, with the kept row each duplicates,
in `semantic_duplicates.parquet` beside the parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.release.files import ReleaseVariant
from laion_assets.core.release.writer import ReleaseRows
from laion_assets.core.search.build import gather_embeddings, locate_rows
from laion_assets.core.search.semdedup import DEFAULT_SEED, REASON, default_clusters, drop_rows, semantic_dedup
from laion_assets.core.storage.layout import RELEASE_SEMANTIC_DROPS

DROPS_SCHEMA = pa.schema([("sample_id", pa.int64()), ("reason", pa.string()),
                          ("duplicate_of", pa.int64()), ("similarity", pa.float32())])


@dataclass(frozen=True)
class SemanticDrops:
    """The rows one variant drops as semantic duplicates, and what the card says about the run."""

    table: pa.Table  # DROPS_SCHEMA, sorted by sample_id
    min_cosine: float
    seed: int
    clusters: int
    rows_compared: int
    rows_not_compared: int
    elapsed_s: float = field(default=0.0, compare=False)  # logged, never written (files stay byte-identical)

    @property
    def reasons(self) -> pa.Table:
        return self.table.select(["sample_id", "reason"])

    def summary(self) -> dict[str, Any]:
        """The manifest's `semantic_dedup` (no time, no path)."""
        return {"min_cosine": self.min_cosine, "seed": self.seed, "clusters": self.clusters,
                "rows_compared": self.rows_compared, "rows_not_compared": self.rows_not_compared,
                "dropped": self.table.num_rows, "file": RELEASE_SEMANTIC_DROPS,
                "method": "SemDeDup: spherical k-means on the image embeddings, then inside each cluster a row "
                          "with cosine >= min_cosine to a better-scored row (similarity desc, SAMPLE_ID asc) is dropped"}

    def write(self, out_dir: Path) -> None:
        pq.write_table(self.table, out_dir / RELEASE_SEMANTIC_DROPS, compression="zstd")


def semantic_duplicates(st, rows: ReleaseRows, variant: ReleaseVariant, *, seed: int = DEFAULT_SEED) -> SemanticDrops:
    """Which of the variant's rows (after its NSFW policy) are semantic duplicates of a better-scored row."""
    if variant.semdedup_min_cosine is None:
        raise ValueError(f"variant {variant.name} has semantic dedup off")
    started = time.perf_counter()
    candidates = rows.con.sql(
        f"SELECT SAMPLE_ID, crawl, similarity FROM ({rows.release_sql(variant.punsafe_max)}) ORDER BY SAMPLE_ID"
    ).to_arrow_table()
    located, emb_dirs = locate_rows(st, candidates)
    img, _text = gather_embeddings(st, located, emb_dirs)
    ids = np.asarray(located.column("SAMPLE_ID").to_numpy(zero_copy_only=False), np.int64)
    scores = np.asarray(located.column("similarity").to_numpy(zero_copy_only=False), np.float64)
    n = len(ids)
    clusters = default_clusters(n) if n >= 2 else 1
    if n >= 2:
        result = semantic_dedup(img, scores, ids, min_cosine=variant.semdedup_min_cosine,
                                n_clusters=clusters, seed=seed)
        table = drop_rows(ids, result).cast(DROPS_SCHEMA)
    else:
        table = DROPS_SCHEMA.empty_table()
    table = table.sort_by("sample_id")
    return SemanticDrops(table, variant.semdedup_min_cosine, seed, clusters, n, candidates.num_rows - n,
                         time.perf_counter() - started)

