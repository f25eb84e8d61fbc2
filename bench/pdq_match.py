"""PDQ removal matching: the banded equi-join (core.removal.pdq_matches_sql) vs comparing every
(row, entry) pair, on the same random hashes in one run; both must find the same matches.

    python bench/pdq_match.py [--rows 200000] [--entries 1000] [--max-distance 31]

A tenth of the rows are copies of an entry with 0..40 bits flipped (so some match, some just miss);
the rest are random. Last line:
    bench: pdq_match rows=<n> entries=<m> banded_s=<...> all_pairs_s=<...> matches=<k> ratio=<all_pairs_s / banded_s>
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laion_assets.core.removal.entries import pdq_distance_sql, pdq_matches_sql  # noqa: E402


def random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**63, size=(n, 4), dtype=np.uint64) << np.uint64(1) | rng.integers(0, 2, size=(n, 4), dtype=np.uint64)


def hexes(words: np.ndarray) -> list[str]:
    return ["".join(f"{int(w):016x}" for w in row) for row in words]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--entries", type=int, default=1_000)
    ap.add_argument("--max-distance", type=int, default=31)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    entries = random_hashes(rng, args.entries)
    rows = random_hashes(rng, args.rows)
    copies = rng.choice(args.rows, size=args.rows // 10, replace=False)
    for i in copies:  # a near copy of a random entry
        words = entries[rng.integers(args.entries)].copy()
        for bit in rng.choice(256, size=int(rng.integers(0, 41)), replace=False):
            words[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        rows[i] = words
    r = pa.table({"SAMPLE_ID": np.arange(args.rows), "pdq": hexes(rows), "pdq_quality": np.full(args.rows, 90)})
    e = pa.table({"kind": ["pdq"] * args.entries, "value": hexes(entries),
                  "source": [f"s{i}" for i in range(args.entries)]})
    with duckdb.connect() as con:
        con.register("r", r)
        con.register("e", e)
        t0, c0 = time.perf_counter(), time.process_time()
        banded = con.sql(pdq_matches_sql("r", "e", ["SAMPLE_ID"], pdq_max_distance=args.max_distance)).fetchall()
        banded_s, banded_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        every = con.sql(f"SELECT r.SAMPLE_ID, e.kind, e.source FROM r JOIN e ON e.kind = 'pdq' AND r.pdq_quality >= 50 "
                        f"AND {pdq_distance_sql('r.pdq', 'e.value')} <= {args.max_distance}").fetchall()
        all_s, all_cpu = time.perf_counter() - t0, time.process_time() - c0
    if sorted(banded) != sorted(every):
        sys.exit(f"banded and all-pairs disagree: {len(banded)} vs {len(every)} matches")
    print(f"banded {banded_s:.2f}s wall / {banded_cpu:.2f}s cpu; all pairs {all_s:.2f}s wall / {all_cpu:.2f}s cpu; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"bench: pdq_match rows={args.rows} entries={args.entries} banded_s={banded_s:.2f} all_pairs_s={all_s:.2f} "
          f"matches={len(banded)} ratio={all_s / banded_s:.1f}")


if __name__ == "__main__":
    main()
