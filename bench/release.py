"""Release build throughput: our dbt models + release writer vs a straightforward pandas version.

Generates shard parquet (the `filtered_pairs` and drop-log layout) with duplicate pairs, duplicate
images and a removal list of `--removal-entries` entries (URL md5/sha256, image md5/sha256, exact
URLs, domains; about 1 % of rows match), then in the same run:
- ours, timed for the ratio (the same work as the baseline): `dbt run` of the models the release
  rows come from (`+published_pairs`: removal anti-join, placeholders, pair and image dedup) in
  DuckDB, then one variant written as `published_dataset` writes it (core.release_writer: rows
  loaded once, content-defined zstd parts written in parallel, version). The rest of the release
  path runs too and is timed apart: the drop log, dedup and stats models with the card's counts
  (`stats_s`; `full_ratio` counts them, with their own dbt start-up) and the release checks
  (`checks_s`: the baseline checks nothing);
- baseline: pandas reading the same parquet, hashing URLs with hashlib, anti-joining each kind,
  deduplicating (URL, TEXT) and sha256 by best similarity, writing parquet.
Both must publish the same rows (checked). Wall and CPU time (self + children) are printed.

    python bench/release.py --rows 1000000      # the default; under a minute on 2 cores
    python bench/release.py --rows 10000000 --removal-entries 1000000
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

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from laion_assets.core.lib.ids import sample_id_sql  # noqa: E402
from laion_assets.core.release.checks import CHECKS
from laion_assets.core.release.files import DEFAULT_ROWS_PER_PART, ReleaseVariant
from laion_assets.core.release.writer import ReleaseRows, release_version  # noqa: E402
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, host_sql  # noqa: E402
from laion_assets.core.schemas.filtered import DROP_LOG_SCHEMA  # noqa: E402
from laion_assets.defs.dbt.project import DBT_DIR, dbt_executable  # noqa: E402


def cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def generate(root: Path, rows: int, entries: int, shards: int, seed: int = 0) -> None:
    """Shard parquet via DuckDB (fast), ~3 % duplicate pairs, ~2 % duplicate images."""
    crawl = root / "BENCH-CRAWL"
    for sub in ("filtered", "drops", "images"):
        (crawl / sub).mkdir(parents=True, exist_ok=True)
    per = -(-rows // shards)
    with duckdb.connect() as con:
        con.execute(f"SELECT setseed({seed / 10})")
        for s in range(shards):
            lo, hi = s * per, min(rows, (s + 1) * per)
            # i % 33 == 0 repeats the previous pair (URL, TEXT); i % 50 == 1 reuses the previous image.
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE t AS
                SELECT
                    lpad(CAST(i - {lo} AS VARCHAR), 9, '0') AS key,
                    'http://h' || CAST((CASE WHEN i % 33 = 0 THEN i - 1 ELSE i END) % 5000 AS VARCHAR)
                        || '.example/img/' || CAST(CASE WHEN i % 33 = 0 THEN i - 1 ELSE i END AS VARCHAR) || '.jpg' AS url,
                    'caption number ' || CAST(CASE WHEN i % 33 = 0 THEN i - 1 ELSE i END AS VARCHAR) AS text,
                    NULL::BIGINT AS sample_id, NULL::VARCHAR AS url_host,
                    'http://h' || CAST(i % 5000 AS VARCHAR) || '.example/page.html' AS page_url,
                    'BENCH-CRAWL' AS crawl, '{s:05d}' AS shard,
                    'crawl-data/BENCH/warc/' || CAST(i % 97 AS VARCHAR) || '.warc.gz' AS warc_path,
                    CAST(i * 1000 AS BIGINT) AS warc_offset, NULL::VARCHAR AS license, 'en' AS language,
                    CAST(256 AS INTEGER) AS width, CAST(256 AS INTEGER) AS height,
                    sha256('img' || CAST(CASE WHEN i % 50 = 1 THEN i - 1 ELSE i END AS VARCHAR)) AS sha256,
                    md5('img' || CAST(CASE WHEN i % 50 = 1 THEN i - 1 ELSE i END AS VARCHAR)) AS md5,
                    NULL::VARCHAR AS sha1, NULL::VARCHAR AS pdq, NULL::INTEGER AS pdq_quality,
                    NULL::TIMESTAMPTZ AS fetched_at,
                    CAST(0.28 + random() * 0.2 AS FLOAT) AS similarity, CAST(0.28 AS FLOAT) AS threshold,
                    'ViT-B-32' AS model_id, 'laion2b_s34b_b79k' AS weights_id,
                    CAST(random() * 0.5 AS FLOAT) AS punsafe, 'zero_shot:ViT-B-32' AS punsafe_source, 'UNLIKELY' AS nsfw
                FROM range({lo}, {hi}) r(i)
            """)
            # The filter stage writes SAMPLE_ID and the host once per pair; so does this.
            con.execute(f"UPDATE t SET sample_id = {sample_id_sql('url', 'text')}, "
                        f"url_host = coalesce({host_sql('url')}, '')")
            con.execute(f"COPY t TO '{crawl}/filtered/{s:05d}.parquet' (FORMAT parquet, COMPRESSION zstd)")
            con.execute(f"COPY (SELECT key, url, 'ok' AS status, sha256 FROM t) TO '{crawl}/images/{s:05d}.parquet' (FORMAT parquet)")
        pq.write_table(DROP_LOG_SCHEMA.empty_table(), crawl / "drops" / "00000.parquet")
        # Removal entries: 1 % of rows hit (spread over kinds), the rest are hashes that match nothing.
        hits = max(1, rows // 100)
        (root / "removal").mkdir(exist_ok=True)
        con.execute(f"""
            COPY (
                SELECT kind, value, 'src-' || kind AS source, NULL::VARCHAR AS listed_on FROM (
                    SELECT CASE i % 5 WHEN 0 THEN 'url_md5' WHEN 1 THEN 'url_sha256' WHEN 2 THEN 'image_md5'
                                      WHEN 3 THEN 'image_sha256' ELSE 'url' END AS kind,
                           CASE i % 5 WHEN 0 THEN md5(u) WHEN 1 THEN sha256(u) WHEN 2 THEN md5('img' || CAST(j AS VARCHAR))
                                      WHEN 3 THEN sha256('img' || CAST(j AS VARCHAR)) ELSE u END AS value
                    FROM (SELECT i, j, 'http://h' || CAST(j % 5000 AS VARCHAR) || '.example/img/' || CAST(j AS VARCHAR) || '.jpg' AS u
                          FROM (SELECT i, (i * 7919) % {rows} AS j FROM range({hits}) r(i)))
                    UNION ALL
                    SELECT 'url_md5', md5('nomatch' || CAST(i AS VARCHAR)) FROM range({max(0, entries - hits - 3)}) r(i)
                    UNION ALL
                    SELECT 'domain', 'h' || CAST(i AS VARCHAR) || '.example' FROM range(3) r(i) WHERE {int(entries > hits)} = 1
                )
            ) TO '{root}/removal/entries.parquet' (FORMAT parquet)
        """)


def _dbt_run(root: Path, *selection: str) -> None:
    env = {**os.environ, "LAION_ASSETS_ROOT": str(root)}
    quiet = [] if os.environ.get("BENCH_DBT_LOG") else ["--quiet"]
    subprocess.run([dbt_executable(), "run", *quiet, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
                    "--target-path", str(root / "dbt-target"), *selection], check=True, env=env, cwd=DBT_DIR)


def run_ours(root: Path, out: Path) -> tuple[int, dict[str, tuple[float, float]]]:
    """The pipeline's release path. Timed for the ratio, the same work as the baseline: `dbt run` of
    the models the release rows come from (`+published_pairs`: removal anti-join, placeholders, pair
    and image dedup), then one variant's parts written by core.release_writer as `published_dataset`
    writes them (rows loaded once, content-defined zstd parts in parallel) and its version. Timed
    apart (the baseline has no such work): the drop log and stats models with the card's counts
    (`stats`), and the release checks (`checks`). Returns (rows published, {name: (wall, CPU)})."""
    # As in the pipeline, dbt starts from the project's parse (definitions parse it once).
    parsed = DBT_DIR / "target" / "partial_parse.msgpack"
    if parsed.exists():
        (root / "dbt-target").mkdir(exist_ok=True)
        shutil.copy(parsed, root / "dbt-target" / "partial_parse.msgpack")
    phases, t0 = [], time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        phases.append(f"{name} {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()

    _dbt_run(root, "--select", "+published_pairs")
    lap("dbt")
    variant = ReleaseVariant("research", 1.0)
    apart: dict[str, tuple[float, float]] = {}
    with ReleaseRows.from_warehouse(root / "warehouse.duckdb") as rows:
        lap("load")
        files = rows.write_parts(variant.punsafe_max, out, DEFAULT_ROWS_PER_PART)
        release_version(variant.name, files)
        lap("parts")
        print("ours, by phase: " + ", ".join(phases), flush=True)
        t0, c0 = time.perf_counter(), cpu_s()
        rows.describe(variant.punsafe_max)
        card = (time.perf_counter() - t0, cpu_s() - c0)
        t0, c0 = time.perf_counter(), cpu_s()
        entries = pq.read_table(root / "removal" / "entries.parquet")
        failed = [o.name for o in rows.check(variant.punsafe_max, CHECKS, entries) if not o.passed]
        apart["checks"] = (time.perf_counter() - t0, cpu_s() - c0)
    t0, c0 = time.perf_counter(), cpu_s()
    _dbt_run(root, "--exclude", "+published_pairs")  # drop_log, dedup and stats models
    apart["stats"] = (time.perf_counter() - t0 + card[0], cpu_s() - c0 + card[1])
    if failed:
        sys.exit(f"release checks failed: {failed}")
    return sum(f["rows"] for f in files), apart


def run_pandas(root: Path, out: Path) -> int:
    import pandas as pd

    df = pd.concat([pd.read_parquet(p) for p in sorted((root / "BENCH-CRAWL" / "filtered").glob("*.parquet"))],
                   ignore_index=True)
    entries = pd.read_parquet(root / "removal" / "entries.parquet")
    url_md5 = df["url"].map(lambda u: hashlib.md5(u.encode()).hexdigest())
    url_sha256 = df["url"].map(lambda u: hashlib.sha256(u.encode()).hexdigest())
    host = df["url"].str.extract(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)", expand=False).str.lower()
    removed = np.zeros(len(df), dtype=bool)
    for kind, col in [("url_md5", url_md5), ("url_sha256", url_sha256), ("image_md5", df["md5"]),
                      ("image_sha256", df["sha256"]), ("url", df["url"])]:
        removed |= col.isin(set(entries.loc[entries["kind"] == kind, "value"])).to_numpy()
    domains = set(entries.loc[entries["kind"] == "domain", "value"])
    removed |= host.map(lambda h: any(h == d or h.endswith("." + d) for d in domains)).to_numpy()
    df = df[~removed]
    df = df.sort_values(["similarity", "crawl", "shard", "warc_path", "warc_offset", "key"],
                        ascending=[False, True, True, True, True, True])
    df = df.drop_duplicates(["url", "text"]).drop_duplicates(["sha256"])
    df.to_parquet(out, compression="zstd", index=False)
    return len(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--removal-entries", type=int, default=None, help="default: rows / 10")
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    entries = args.removal_entries if args.removal_entries is not None else args.rows // 10
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        generate(root, args.rows, entries, args.shards)
        print(f"generated {args.rows} rows in {args.shards} shards, {entries} removal entries "
              f"in {time.perf_counter() - t0:.1f}s", flush=True)
        c0, t0 = cpu_s(), time.perf_counter()
        ours_rows, apart = run_ours(root, root / "ours")
        ours_s = time.perf_counter() - t0 - sum(w for w, _ in apart.values())
        ours_cpu = cpu_s() - c0 - sum(c for _, c in apart.values())
        stats_s, checks_s = apart["stats"][0], apart["checks"][0]
        print(f"ours: {ours_rows} rows published, {ours_s:.2f}s wall, {ours_cpu:.2f}s cpu (timed apart: drop log, "
              f"stats models and card counts {stats_s:.2f}s wall {apart['stats'][1]:.2f}s cpu; release checks "
              f"{checks_s:.2f}s wall {apart['checks'][1]:.2f}s cpu)", flush=True)
        c0, t0 = cpu_s(), time.perf_counter()
        base_rows = run_pandas(root, root / "pandas.parquet")
        base_s, base_cpu = time.perf_counter() - t0, cpu_s() - c0
        print(f"pandas: {base_rows} rows published, {base_s:.2f}s wall, {base_cpu:.2f}s cpu", flush=True)
        with duckdb.connect() as con:
            diff = con.sql(f"""
                SELECT count(*) FROM (
                    (SELECT URL, TEXT FROM '{root}/ours/part-*.parquet' EXCEPT SELECT url, text FROM '{root}/pandas.parquet')
                    UNION ALL
                    (SELECT url, text FROM '{root}/pandas.parquet' EXCEPT SELECT URL, TEXT FROM '{root}/ours/part-*.parquet'))
            """).fetchall()[0][0]
        if diff or ours_rows != base_rows:
            sys.exit(f"ours and pandas disagree: {ours_rows} vs {base_rows} rows, {diff} differing pairs")
        print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
        ours_rps, base_rps = args.rows / ours_s, args.rows / base_s
        # full_ratio: with the drop log and stats models counted too (the whole dbt project and card).
        print(f"bench: release rows={args.rows} rows_per_s={ours_rps:.0f} baseline_rows_per_s={base_rps:.0f} "
              f"ours_s={ours_s:.1f} ours_cpu_s={ours_cpu:.1f} baseline_s={base_s:.1f} baseline_cpu_s={base_cpu:.1f} "
              f"stats_s={stats_s:.1f} checks_s={checks_s:.1f} full_ratio={base_s / (ours_s + stats_s):.2f} "
              f"ratio={ours_rps / base_rps:.2f}")


if __name__ == "__main__":
    main()
