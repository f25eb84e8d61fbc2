"""Canonical URL/host per kept row (core.removal.canonical.canonical_columns, what the filter stage
adds) against the host extraction it sits beside (core.removal.entries.host_sql, a DuckDB regex),
on the same generated URLs in one run.

    python bench/canonical.py [--rows 200000]

A tenth of the URLs are odd spellings (upper-case hosts, trailing dots, default ports, escapes,
IDNA, full-width dots). Last line:
    bench: canonical rows=<n> canonical_s=<...> canonical_cpu_s=<...> host_sql_s=<...> us_per_row=<...> ratio=<canonical_s / host_sql_s>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laion_assets.core.removal.canonical import canonical_columns  # noqa: E402
from laion_assets.core.removal.entries import host_sql  # noqa: E402

ODD = ["HTTP://IMG{i}.EXAMPLE.COM/a/{i}.jpg", "http://img{i}.example.com./a/{i}.jpg",
       "http://img{i}.example.com:80/a%7E{i}.jpg", "https://bücher{i}.example/{i}.jpg",
       "http://img{i}\uff0eexample\uff0ecom/{i}.jpg"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    urls = [ODD[i % len(ODD)].format(i=i) if rng.random() < 0.1 else
            f"https://cdn{i % 997}.example{i % 13}.com/images/{i:08d}/photo-{i}.jpg?w=512"
            for i in range(args.rows)]
    t0, c0 = time.perf_counter(), time.process_time()
    canon, hosts = canonical_columns(urls)
    canonical_s, canonical_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert canon.null_count == 0 and hosts.null_count == 0
    with duckdb.connect() as con:
        con.register("t", pa.table({"url": urls}))
        t0 = time.perf_counter()
        con.sql(f"SELECT count(DISTINCT {host_sql('url')}) FROM t").fetchall()
        host_sql_s = time.perf_counter() - t0
    print(f"bench: canonical rows={args.rows} canonical_s={canonical_s:.2f} canonical_cpu_s={canonical_cpu:.2f} "
          f"host_sql_s={host_sql_s:.3f} us_per_row={canonical_s / args.rows * 1e6:.2f} "
          f"ratio={canonical_s / host_sql_s:.1f}")


if __name__ == "__main__":
    main()
