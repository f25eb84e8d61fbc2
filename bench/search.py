"""Search index bench: the index the `search_index` asset builds (core/search/index.py) against exact
search in the same run, on N generated 512-d unit vectors stored as float16 like the pipeline's.

    PYTHONPATH=$PWD .venv/bin/python bench/search.py [--n 100000] [--queries 500] [--hnsw]

Vectors are a mixture of `--centers` Gaussian clusters (real CLIP embeddings are clustered; uniform
random vectors have no neighbours worth finding). Queries are fresh draws of the same mixture.
Latency is per single query (what the service answers), p50/p99 over the queries; recall@10 is the
share of the exact top 10 the index returns. Semantic dedup runs on the same vectors and is timed.
Last line: `bench: search n=<N> build_s=<..> p50_ms=<..> recall_at_10=<..> exact_p50_ms=<..> ratio=<exact/index p50>`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402

from laion_assets.core.search import index as knn  # noqa: E402
from laion_assets.core.search.semdedup import default_clusters, semantic_dedup  # noqa: E402


def mixture(n: int, dim: int, centers: int, spread: float, seed: int, dup_share: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = knn.unit_rows(rng.standard_normal((centers, dim), dtype=np.float32))
    out = np.empty((n, dim), np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        pick = rng.integers(0, centers, b - a)
        out[a:b] = c[pick] + spread * rng.standard_normal((b - a, dim), dtype=np.float32) / np.sqrt(dim)
    if dup_share:  # near-duplicates (re-uploads, crops): a copy of an earlier row plus a little noise
        k = int(n * dup_share)
        src = rng.integers(0, n - k, k)
        out[n - k:] = out[src] + 0.05 * rng.standard_normal((k, dim), dtype=np.float32) / np.sqrt(dim)
    return knn.unit_rows(out.astype(np.float16))  # stored as float16, searched as float32


def per_query_ms(index: faiss.Index, q: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(len(q))
    for i in range(len(q)):
        t = time.perf_counter()
        index.search(q[i : i + 1], k)
        out[i] = (time.perf_counter() - t) * 1000
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--centers", type=int, default=0, help="0: n/100")
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--hnsw", action="store_true", help="also faiss HNSW32 (the graph alternative)")
    p.add_argument("--no-semdedup", action="store_true")
    a = p.parse_args()
    threads = knn.set_threads()
    print(f"threads={threads} loadavg={os.getloadavg()}", flush=True)
    centers = a.centers or max(10, a.n // 100)
    x = mixture(a.n, a.dim, centers, a.spread, a.seed, dup_share=0.02)
    q = mixture(a.queries, a.dim, centers, a.spread, a.seed)  # same centers (same seed), fresh draws
    q = knn.unit_rows(q + 0.0)

    exact = faiss.IndexFlatIP(a.dim)
    exact.add(x)
    _, truth = exact.search(q, a.k)
    exact_ms = per_query_ms(exact, q, a.k)

    rows = []
    t, c = time.perf_counter(), time.process_time()
    index, spec = knn.build(x)
    build_s, build_cpu = time.perf_counter() - t, time.process_time() - c
    ivf = faiss.extract_index_ivf(index) if spec.nprobe else None
    for nprobe in ([spec.nprobe // 2, spec.nprobe, spec.nprobe * 2] if ivf else [None]):
        if nprobe:
            ivf.nprobe = nprobe
        ms = per_query_ms(index, q, a.k)
        rec = recall(index.search(q, a.k)[1], truth)
        rows.append((f"{spec.factory} nprobe={nprobe}", build_s, build_cpu, ms, rec, nprobe == spec.nprobe or not nprobe))
    if ivf:
        ivf.nprobe = spec.nprobe
    if a.hnsw:
        t, c = time.perf_counter(), time.process_time()
        h = faiss.IndexHNSWFlat(a.dim, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 80
        h.add(x)
        hb, hc = time.perf_counter() - t, time.process_time() - c
        h.hnsw.efSearch = 64
        rows.append(("HNSW32 efSearch=64", hb, hc, per_query_ms(h, q, a.k), recall(h.search(q, a.k)[1], truth), False))
    print(f"{'index':28} {'build_s':>8} {'build_cpu_s':>11} {'p50_ms':>7} {'p99_ms':>7} {'recall@10':>9}")
    print(f"{'Flat (exact)':28} {'0':>8} {'0':>11} {np.percentile(exact_ms, 50):7.2f} {np.percentile(exact_ms, 99):7.2f} {1.0:9.3f}")
    for name, b, bc, ms, rec, _ in rows:
        print(f"{name:28} {b:8.1f} {bc:11.1f} {np.percentile(ms, 50):7.2f} {np.percentile(ms, 99):7.2f} {rec:9.3f}")
    size_mb = len(faiss.serialize_index(index)) / 2**20
    print(f"index bytes: {size_mb:.0f} MiB ({a.n} x {a.dim} float32 = {a.n * a.dim * 4 / 2**20:.0f} MiB); "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if not a.no_semdedup:
        scores = np.random.default_rng(a.seed).random(a.n)
        t, c = time.perf_counter(), time.process_time()
        r = semantic_dedup(x, scores)
        print(f"semdedup: n={a.n} clusters={default_clusters(a.n)} wall_s={time.perf_counter() - t:.1f} "
              f"cpu_s={time.process_time() - c:.1f} dropped={int(r.dropped.sum())} (planted {int(a.n * 0.02)})")
    name, b, _, ms, rec, _ = next(r for r in rows if r[5])
    p50, ep50 = float(np.percentile(ms, 50)), float(np.percentile(exact_ms, 50))
    print(f"bench: search n={a.n} build_s={b:.1f} p50_ms={p50:.2f} recall_at_10={rec:.3f} "
          f"exact_p50_ms={ep50:.2f} ratio={ep50 / p50:.1f}")


if __name__ == "__main__":
    main()
