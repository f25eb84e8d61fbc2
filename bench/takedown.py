"""Takedown cost: the incremental re-derive against the full build, after 10 new removal entries.

`python bench/takedown.py --rows N [--part-rows R]` generates N kept rows in shards of 50,000 in the
`filtered_pairs` layout (bench/release.py's generator: 3 % duplicate pairs, 2 % duplicate images, 1 %
of rows removed by a first removal list), builds dbt and publishes the default variants
(`research`, `research-safe`) in parts of R rows (default: the release's own part size), which
writes the release index. Then 10 new entries (URL sha256/md5/sha1, exact URL in another spelling,
URL prefix, image sha256/md5), each naming one published row, spread over the SAMPLE_ID range, are
filed in two copies of that state and, in the same run:
- full: what a re-derive cost before (`dbt run` of every model, then `publish_release` with the
  incremental path off: every row loaded, sorted, every part written, checks, diff, withdrawal, purge);
- re-derive: `publish_release` as the pipeline runs it (the incremental path decides, and runs).
Both must publish the same versions. Last line:
`bench: takedown rows=N parts=P full_s=.. rederive_s=.. parts_rewritten=.. rows_rewritten=.. ratio=full/rederive`
(parts, parts and rows rewritten: summed over the variants; CPU printed beside wall above it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from release import generate  # noqa: E402  (bench/release.py's shard generator)

from laion_assets.core.release.checks import LossLimits  # noqa: E402
from laion_assets.core.release.files import DEFAULT_ROWS_PER_PART, DEFAULT_VARIANTS  # noqa: E402
from laion_assets.core.release.publish import PublishOptions, publish_release  # noqa: E402
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, entry_host, normalize  # noqa: E402
from laion_assets.core.storage.layout import REMOVAL_ENTRIES, WAREHOUSE  # noqa: E402
from laion_assets.core.storage.local import LocalStorage  # noqa: E402
from laion_assets.defs.dbt.project import DBT_DIR, dbt_executable, vars_args  # noqa: E402


def cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def dbt_run(root: Path) -> None:
    env = {**os.environ, "LAION_ASSETS_ROOT": str(root), "LAION_WAREHOUSE_PATH": str(root / WAREHOUSE)}
    parsed = DBT_DIR / "target" / "partial_parse.msgpack"
    if parsed.exists():
        (root / "dbt-target").mkdir(exist_ok=True)
        shutil.copy(parsed, root / "dbt-target" / "partial_parse.msgpack")
    quiet = [] if os.environ.get("BENCH_DBT_LOG") else ["--quiet"]
    subprocess.run([dbt_executable(), "run", *quiet, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
                    "--target-path", str(root / "dbt-target"), *vars_args(str(root))], check=True, env=env, cwd=DBT_DIR)


def add_canonical_columns(root: Path) -> None:
    """The filter stage writes url_canonical/host_canonical; bench/release.py's shards predate them.
    The generated URLs are canonical already (lower-case host, no port), so they are the URL and host."""
    import duckdb

    from laion_assets.core.schemas.filtered import FILTERED_SCHEMA

    cols = ", ".join({"url_canonical": "url AS url_canonical", "host_canonical": "url_host AS host_canonical"}.get(c, c)
                     for c in FILTERED_SCHEMA.names)
    with duckdb.connect() as con:
        for f in sorted((root / "BENCH-CRAWL" / "filtered").glob("*.parquet")):
            tmp = f.with_suffix(".tmp")
            con.execute(f"COPY (SELECT {cols} FROM read_parquet('{f}')) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
            tmp.replace(f)


def targets(rows: int, n: int = 10) -> list[int]:
    """n generated rows spread over the release, each published and without a copy (no duplicate
    pair or image, not hit by the first removal list): a removal of one of them is one row."""
    hit = {(i * 7919) % rows for i in range(max(1, rows // 100))}
    out, i = [], 0
    for k in range(n):
        i = max(i + 1, k * rows // n + 17)
        while i % 33 in (0, 32) or i % 50 in (0, 1) or i in hit:
            i += 1
        out.append(i)
    return out


def new_entries(rows: int) -> list[dict]:
    kinds = ["url_sha256", "url", "image_sha256", "url_md5", "image_md5", "url_sha1", "url_prefix", "url_sha256",
             "url", "image_sha256"]
    out = []
    for kind, i in zip(kinds, targets(rows)):
        url, img = f"http://h{i % 5000}.example/img/{i}.jpg", f"img{i}".encode()
        raw = {"url_sha256": hashlib.sha256(url.encode()).hexdigest(), "url_md5": hashlib.md5(url.encode()).hexdigest(),
               "url_sha1": hashlib.sha1(url.encode()).hexdigest(), "image_sha256": hashlib.sha256(img).hexdigest(),
               "image_md5": hashlib.md5(img).hexdigest(), "url_prefix": url,
               "url": url.replace("http://h", "HTTP://H").replace(".example/", ".example.:80/")}[kind]
        value = normalize(kind, raw)
        out.append({"kind": kind, "value": value, "source": "takedown-bench", "listed_on": None,
                    "host": entry_host(kind, value)})
    return out


def file_entries(root: Path, added: list[dict]) -> None:
    old = pq.read_table(root / REMOVAL_ENTRIES).to_pylist()  # as filed before (unchanged: not withdrawn)
    pq.write_table(pa.Table.from_pylist(old + added, schema=REMOVAL_SCHEMA), root / REMOVAL_ENTRIES)


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_s()
    out = fn()
    return out, time.perf_counter() - t0, cpu_s() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--part-rows", type=int, default=DEFAULT_ROWS_PER_PART)
    ap.add_argument("--shards", type=int, default=None,
                    help="shards (default: one per 50,000 rows, at least 8: a purge rewrites each shard a removed row is in)")
    ap.add_argument("--profile", action="store_true", help="print the re-derive's cProfile (not for timing)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()
    args.shards = args.shards or max(8, args.rows // 50_000)
    work = Path(tempfile.mkdtemp(prefix="bench-takedown-", dir=args.dir))
    limits = LossLimits(max_removal_fraction=0.05)  # the first list removes ~1 % (held at the default 1 %)
    opts = PublishOptions(rows_per_part=args.part_rows, limits=limits)
    try:
        root = work / "inc"
        (_, gen_s, _) = timed(lambda: (generate(root, args.rows, max(1, args.rows // 100), args.shards),
                                       add_canonical_columns(root)))
        print(f"generated {args.rows} rows in {gen_s:.1f} s", flush=True)
        (first, first_s, first_cpu) = timed(lambda: (dbt_run(root), publish_release(LocalStorage(root), DEFAULT_VARIANTS,
                                                                                   opts))[1])
        print(f"first build (dbt run + publish + release index): {first_s:.1f} s wall, {first_cpu:.1f} s CPU; "
              + ", ".join(f"{n} {m['rows']} rows" for n, m in first.variants.items()), flush=True)
        other = work / "full"
        subprocess.run(["cp", "-al", str(root), str(other)], check=True)  # files are written whole, never in place
        (other / WAREHOUSE).unlink()
        shutil.copyfile(root / WAREHOUSE, other / WAREHOUSE)  # dbt writes this one in place
        added = new_entries(args.rows)
        file_entries(root, added)
        file_entries(other, added)
        with open("/proc/loadavg") as f:
            print(f"load before the timed runs: {f.read().strip()}", flush=True)
        def rederive():
            if not args.profile:
                return publish_release(LocalStorage(root), DEFAULT_VARIANTS, opts, log=print)
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                out = publish_release(LocalStorage(root), DEFAULT_VARIANTS, opts, log=print)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return out

        (inc, inc_s, inc_cpu) = timed(rederive)
        print(f"re-derive ({inc.mode}): {inc_s:.2f} s wall, {inc_cpu:.2f} s CPU; {inc.mode_reason}", flush=True)
        full_opts = PublishOptions(rows_per_part=args.part_rows, limits=limits, incremental=False)
        (full, full_s, full_cpu) = timed(lambda: (dbt_run(other), publish_release(LocalStorage(other), DEFAULT_VARIANTS,
                                                                                  full_opts))[1])
        print(f"full: {full_s:.2f} s wall, {full_cpu:.2f} s CPU", flush=True)
        with open("/proc/loadavg") as f:
            print(f"load after: {f.read().strip()}", flush=True)
        if inc.mode != "incremental":
            sys.exit(f"the re-derive took the full build: {inc.mode_reason}")
        same = {n: m["version"] for n, m in inc.variants.items()} == {n: m["version"] for n, m in full.variants.items()}
        if not same:
            sys.exit(f"versions differ: {inc.variants} vs {full.variants}")
        parts = sum(len(list((root / "releases" / n / m["version"]).glob("part-*.parquet"))) for n, m in inc.variants.items())
        rewritten = sum(len(m["incremental"]["parts_rewritten"]) for m in inc.variants.values())
        rows_rewritten = sum(m["incremental"]["rows_rewritten"] for m in inc.variants.values())
        versions = ", ".join(f"{n} {m['version']}" for n, m in inc.variants.items())
        print(f"same versions: {versions}; "
              f"cpu: full_cpu_s={full_cpu:.2f} rederive_cpu_s={inc_cpu:.2f}")
        print(f"bench: takedown rows={args.rows} parts={parts} full_s={full_s:.2f} rederive_s={inc_s:.2f} "
              f"parts_rewritten={rewritten} rows_rewritten={rows_rewritten} ratio={full_s / inc_s:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
