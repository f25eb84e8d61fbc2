"""k-NN indices over unit-norm CLIP embeddings (inner product = cosine), built with faiss.

faiss is what clip-retrieval and autofaiss use, so an index written here (`image.index`,
`text.index`) loads in clip-retrieval's back end unchanged. The index kind follows the row count,
as autofaiss picks one: exact (`Flat`) while a brute-force scan is cheap, else an inverted file
(`IVF<nlist>,Flat`) whose `nprobe` is chosen for recall; see docs/search.md for the measured
trade-off (bench/search.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from laion_assets.core.lib.cpus import available_cpus

# Below this many rows an exact scan answers in ~1 ms per query on 2 cores (bench/search.py):
# no approximation is worth its recall loss.
EXACT_MAX_ROWS = 50_000
TRAIN_POINTS_PER_LIST = 40  # k-means needs ~40 points per centroid (faiss warns below 39)
DEFAULT_NPROBE_FRACTION = 1 / 32  # lists probed per query, as a share of nlist (bench: recall@10 >= 0.95)
TRAIN_SEED = 1234


def set_threads(n: int | None = None) -> int:
    """faiss's OpenMP threads: the CPUs this process may use, not the host's cores."""
    n = n or available_cpus()
    faiss.omp_set_num_threads(n)
    return n


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, each row scaled to norm 1 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1, norms), dtype=np.float32)


def factory_for(n: int) -> str:
    """The faiss factory string for n rows: exact up to EXACT_MAX_ROWS, else IVF with ~4 sqrt(n) lists."""
    if n <= EXACT_MAX_ROWS:
        return "Flat"
    nlist = 1 << max(4, round(math.log2(4 * math.sqrt(n))))
    return f"IVF{nlist},Flat"


@dataclass(frozen=True)
class IndexSpec:
    factory: str
    nprobe: int | None  # IVF only


def build(vectors: np.ndarray, factory: str | None = None, *, nprobe: int | None = None,
          seed: int = TRAIN_SEED) -> tuple[faiss.Index, IndexSpec]:
    """An inner-product index over `vectors` (made unit-norm); row i of the input is id i.

    IVF k-means trains on a fixed-seed sample, so the same vectors give the same index."""
    x = unit_rows(vectors)
    n, dim = x.shape
    factory = factory or factory_for(n)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = _ivf(index)
    if ivf is not None:
        ivf.cp.seed = seed
        want = min(n, ivf.nlist * TRAIN_POINTS_PER_LIST * 2)
        sample = x if want >= n else x[np.sort(np.random.default_rng(seed).choice(n, want, replace=False))]
        index.train(sample)
        ivf.nprobe = nprobe or max(1, round(ivf.nlist * DEFAULT_NPROBE_FRACTION))
    elif not index.is_trained:
        index.train(x)
    if n:
        index.add(x)
    return index, IndexSpec(factory, None if ivf is None else ivf.nprobe)


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, ids) of shape (len(queries), k); ids -1 where fewer than k rows exist."""
    q = unit_rows(np.atleast_2d(queries))
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if index.ntotal == 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    return index.search(q, k)


def write(index: faiss.Index, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))


def read(path: Path, *, mmap: bool = False) -> faiss.Index:
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    return faiss.read_index(str(path), flags)
