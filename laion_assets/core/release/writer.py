"""Building a release from the warehouse: fast at crawl scale, byte-identical when rebuilt.

The rows every variant starts from (dbt's `published_pairs`) are read from the warehouse ONCE into a
private DuckDB table `published` (release columns plus the hash columns the checks need), stored
sorted by SAMPLE_ID; a variant is a filter of that table (`punsafe <= punsafe_max`). Nothing wide
passes through Python.

Parts are content-defined: with n = ceil(rows / rows_per_part) parts, part i holds the rows whose
SAMPLE_ID lies in the i-th of n equal ranges of [0, 2^63) (SAMPLE_ID is a hash, so each part holds
about rows_per_part rows), sorted by SAMPLE_ID (ties, if ever, by URL and TEXT). A removal therefore
changes only the parts that held the removed rows. Because `published` is sorted, a part is one
contiguous range: its query skips every other row group (zone maps), so writing n parts reads the
rows once, not n times. Parts are written in parallel, each by pyarrow from one contiguous table
with fixed settings (zstd, dictionaries only on repeating columns, one row group per part), so the
same rows give the same bytes wherever and whenever they are built; the release version is a hash
of those parts (see `release_version`).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.lib.ids import file_sha256
from laion_assets.core.checks import CheckOutcome, SqlCheck, quote_literal, run_check
from laion_assets.core.schemas.release import RELEASE_SCHEMA

HASH_COLUMNS = ("md5", "sha1", "pdq", "pdq_quality", "url_canonical", "host_canonical")  # for checks, not published
SAMPLE_ID_END = 1 << 63  # SAMPLE_IDs are in [0, 2^63)
# Columns whose values repeat (crawl, model, language, page, WARC file, ...) are dictionary-encoded;
# the per-row ones (URL, TEXT, hashes, scores) are not: trying a dictionary on them and falling back
# cost a quarter of the write time and saved nothing.
DICTIONARY_COLUMNS = ("HEIGHT", "WIDTH", "LICENSE", "NSFW", "LANGUAGE", "crawl", "warc_path", "page_url",
                      "model_id", "weights_id", "threshold", "punsafe_source")
PART_WRITER = {"compression": "zstd", "compression_level": 1, "dictionary": list(DICTIONARY_COLUMNS),
               "writer": f"pyarrow {pa.__version__}"}

# dbt's published_pairs (lowercase, pipeline names) -> release columns + hash columns.
PUBLISHED_SELECT = """
    SELECT sample_id AS SAMPLE_ID, url AS URL, text AS TEXT, CAST(height AS INTEGER) AS HEIGHT,
           CAST(width AS INTEGER) AS WIDTH, license AS LICENSE, nsfw AS NSFW,
           CAST(punsafe AS FLOAT) AS punsafe, CAST(similarity AS FLOAT) AS similarity,
           language AS LANGUAGE, sha256, crawl, crawl_warc_path AS warc_path, warc_offset, page_url,
           model_id, weights_id, CAST(threshold AS FLOAT) AS threshold, punsafe_source,
           md5, sha1, pdq, CAST(pdq_quality AS INTEGER) AS pdq_quality, url_canonical, host_canonical,
           shard, key
    FROM {source}"""


def _variant_filter(punsafe_max: float) -> str:
    return f"punsafe IS NOT NULL AND punsafe <= {float(punsafe_max)!r}"


class ReleaseRows:
    """The published rows of one build in a private DuckDB, for every variant of the release."""

    def __init__(self, con: duckdb.DuckDBPyConnection, spill_dir: Path | None = None, source: str = "published"):
        self.con = con
        self.spill_dir = spill_dir  # removed on close when this object made it
        self.source = source  # the table (or a view of it, see `without`) every query reads
        self.columns = ", ".join(f'"{c}"' for c in RELEASE_SCHEMA.names)

    @classmethod
    def from_warehouse(cls, warehouse: Path, register: Callable[[Any], None] | None = None,
                       temp_dir: Path | None = None) -> ReleaseRows:
        """Attach the warehouse read-only as `wh` (its views read the shard parquet, on S3 through
        `register`) and load `wh.published_pairs` once."""
        con, own_spill = _connect(temp_dir)
        rows = cls(con, own_spill)
        try:
            if register is not None:
                register(con)
            con.execute(f"ATTACH {quote_literal(str(warehouse))} AS wh (READ_ONLY)")
            con.execute("CREATE TABLE published AS " + PUBLISHED_SELECT.format(source="wh.published_pairs")
                        + " ORDER BY SAMPLE_ID")
        except BaseException:
            rows.close()
            raise
        return rows

    @classmethod
    def from_table(cls, table: pa.Table) -> ReleaseRows:
        """From an Arrow table with the release columns (hash columns optional: NULL when absent)."""
        con, own_spill = _connect(None)
        con.register("incoming", table)
        missing = [c for c in (*HASH_COLUMNS, "shard", "key") if c not in table.column_names]
        extra = "".join(f", NULL::{'INTEGER' if c == 'pdq_quality' else 'VARCHAR'} AS {c}" for c in missing)
        con.execute(f"CREATE TABLE published AS SELECT *{extra} FROM incoming ORDER BY SAMPLE_ID")
        con.unregister("incoming")
        return cls(con, own_spill)

    def __enter__(self) -> ReleaseRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def without(self, name: str, sample_ids: pa.Array) -> ReleaseRows:
        """These rows minus `sample_ids` (e.g. a variant's semantic duplicates), as a view named
        `published_without_<name>` on the same connection: nothing is copied. The view belongs to
        this object's connection; close this object, not the view's."""
        view = "published_without_" + "".join(c if c.isalnum() else "_" for c in name)
        ids = pa.table({"sample_id": pa.array(sample_ids, pa.int64())})
        # A table and a plain view (not TEMP): write_parts' and check's cursors must see them too.
        self.con.register("without_incoming", ids)
        self.con.execute(f"CREATE OR REPLACE TABLE {view}_ids AS SELECT sample_id FROM without_incoming")
        self.con.unregister("without_incoming")
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {self.source} "
                         f"WHERE SAMPLE_ID NOT IN (SELECT sample_id FROM {view}_ids)")
        return ReleaseRows(self.con, None, source=view)

    def close(self) -> None:
        self.con.close()
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)

    # one variant's rows
    def release_sql(self, punsafe_max: float) -> str:
        return f"SELECT {self.columns} FROM {self.source} WHERE {_variant_filter(punsafe_max)}"

    def hashes_sql(self, punsafe_max: float) -> str:
        return (f"SELECT SAMPLE_ID, {', '.join(HASH_COLUMNS)} FROM {self.source} "
                f"WHERE {_variant_filter(punsafe_max)}")

    def count(self, punsafe_max: float | None = None) -> int:
        where = "" if punsafe_max is None else f" WHERE {_variant_filter(punsafe_max)}"
        return self.con.sql(f"SELECT count(*) FROM {self.source}{where}").fetchall()[0][0]

    def sample_ids(self, punsafe_max: float) -> pa.Array:
        return self.con.sql(f"SELECT SAMPLE_ID FROM {self.source} WHERE {_variant_filter(punsafe_max)}") \
            .to_arrow_table().column(0).combine_chunks().cast(pa.int64())

    def policy_drops(self, punsafe_max: float) -> pa.Table:
        """(sample_id, reason) of the rows the variant's NSFW policy drops."""
        return self.con.sql(
            f"SELECT SAMPLE_ID AS sample_id, 'nsfw_policy' AS reason FROM {self.source} "
            f"WHERE NOT ({_variant_filter(punsafe_max)})").to_arrow_table()

    def check(self, punsafe_max: float, checks: Sequence[SqlCheck], removal: pa.Table) -> list[CheckOutcome]:
        """Run the release checks on the variant's rows (views `release`, `release_hashes`, `removal`)."""
        cur = self.con.cursor()
        try:
            cur.execute(f"CREATE OR REPLACE TEMP VIEW release AS {self.release_sql(punsafe_max)}")
            cur.execute(f"CREATE OR REPLACE TEMP VIEW release_hashes AS {self.hashes_sql(punsafe_max)}")
            cur.register("removal", removal)
            return [run_check(cur, c) for c in checks]
        finally:
            cur.close()

    def describe(self, punsafe_max: float) -> dict[str, Any]:
        """Counts the card and manifest report, computed from the variant's rows."""
        rows = f"(SELECT * FROM {self.source} WHERE {_variant_filter(punsafe_max)})"
        by = lambda col: {str(k): v for k, v in self.con.sql(  # noqa: E731
            f"SELECT coalesce(CAST({col} AS VARCHAR), 'unknown'), count(*) FROM {rows} GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()}
        models = [
            {"model_id": m, "weights_id": w, "language": lang,
             "threshold": round(float(th), 4) if th is not None else None, "rows": n}
            for m, w, lang, th, n in self.con.sql(
                f"SELECT model_id, weights_id, LANGUAGE, threshold, count(*) FROM {rows} GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        ]
        licensed = self.con.sql(f"SELECT count(*) FROM {rows} WHERE LICENSE IS NOT NULL").fetchall()[0][0]
        return {"rows_by_crawl": by("crawl"), "rows_by_language": by("LANGUAGE"), "thresholds": models,
                "punsafe_sources": by("punsafe_source"), "rows_with_license": licensed}

    def write_parts(self, punsafe_max: float, out_dir: Path, rows_per_part: int,
                    previous_parts: int | None = None) -> list[dict[str, Any]]:
        """Write the variant's content-defined parts into `out_dir`; their names, rows, sizes, sha256.

        `previous_parts`: the part count of the variant's previous version, kept while it still
        gives parts of rows_per_part/2 .. 2*rows_per_part rows (`part_count`), so a re-derive
        leaves every part it does not touch with the same name and bytes."""
        rows = self.count(punsafe_max)
        parts = part_count(rows, rows_per_part, previous_parts)
        bounds = part_bounds(parts)
        out_dir.mkdir(parents=True, exist_ok=True)

        def write(i: int) -> dict[str, Any]:
            cur = self.con.cursor()
            try:
                table = cur.sql(
                    f"{self.release_sql(punsafe_max)} AND SAMPLE_ID >= {bounds[i]} AND SAMPLE_ID < {bounds[i + 1]}"
                ).to_arrow_table()
            finally:
                cur.close()
            return write_part(table, out_dir / f"part-{i:05d}.parquet")

        with ThreadPoolExecutor(max_workers=min(parts, available_cpus())) as pool:
            files = list(pool.map(write, range(parts)))
        written = sum(f["rows"] for f in files)
        if written != rows:  # e.g. a NULL or negative SAMPLE_ID: never publish fewer rows silently
            raise ValueError(f"release parts hold {written} rows, the variant has {rows} "
                             "(rows with a NULL or out-of-range SAMPLE_ID?)")
        return files


def write_part(table: pa.Table, path: Path) -> dict[str, Any]:
    """One part file from one contiguous table with fixed settings (the bytes depend on the rows
    only); its manifest entry. The full build and the incremental re-derive both write through here."""
    table = _canonical_order(table.cast(RELEASE_SCHEMA).combine_chunks())
    pq.write_table(table, path, compression=PART_WRITER["compression"],
                   compression_level=PART_WRITER["compression_level"],
                   use_dictionary=list(DICTIONARY_COLUMNS), row_group_size=max(table.num_rows, 1))
    return {"path": path.name, "rows": table.num_rows, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def part_bounds(parts: int) -> list[int]:
    """The SAMPLE_ID range bounds of `parts` content-defined parts: part i is [b[i], b[i+1])."""
    return [i * SAMPLE_ID_END // parts for i in range(parts)] + [SAMPLE_ID_END]


def part_of(sample_id: int, parts: int) -> int:
    """The part (of `parts`) holding `sample_id`: the largest i with i * 2^63 // parts <= sample_id."""
    return ((sample_id + 1) * parts + SAMPLE_ID_END - 1) // SAMPLE_ID_END - 1


def part_count(rows: int, rows_per_part: int, previous_parts: int | None = None) -> int:
    """ceil(rows / rows_per_part), or the previous version's count while its parts stay within a
    factor of two of `rows_per_part`: the ranges (and so the untouched parts) stay the same."""
    fresh = max(1, math.ceil(rows / rows_per_part))
    if previous_parts and previous_parts > 0 and rows_per_part / 2 <= rows / previous_parts <= 2 * rows_per_part:
        return previous_parts
    if previous_parts and rows <= rows_per_part and previous_parts == 1:
        return 1
    return fresh


def _canonical_order(table: pa.Table) -> pa.Table:
    """The part's rows in (SAMPLE_ID, URL, TEXT) order.

    `published` is stored sorted by SAMPLE_ID and a range scan keeps that order (insertion order is
    preserved), so this only checks: two different pairs share a 63-bit SAMPLE_ID so rarely that the
    full key is sorted on only when a part holds such a tie (or, defensively, is out of order).
    """
    if table.num_rows < 2:
        return table
    ids = table.column("SAMPLE_ID")
    head, tail = ids.slice(0, table.num_rows - 1), ids.slice(1)
    if pc.all(pc.less(head, tail)).as_py():
        return table
    return table.sort_by([("SAMPLE_ID", "ascending"), ("URL", "ascending"), ("TEXT", "ascending")])


def _connect(temp_dir: Path | None) -> tuple[duckdb.DuckDBPyConnection, Path | None]:
    """An in-memory DuckDB that spills to `temp_dir` (or a private directory it owns, returned so
    the caller removes it): larger-than-memory builds spill rather than fail, and two builds never
    share spill files."""
    own = None if temp_dir is not None else Path(tempfile.mkdtemp(prefix="laion-release-spill-"))
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {available_cpus()}")
    con.execute(f"SET temp_directory = {quote_literal(str(temp_dir or own))}")
    return con, own


def release_version(variant: str, files: Sequence[dict[str, Any]]) -> str:
    """sha256 over the variant name, the release schema and each part (name, rows, sha256), in order.

    The parts are a function of the rows alone (content-defined ranges, sorted, fixed writer
    settings), so the version is too: nothing about the build (time, place, shard layout) enters it.
    The same rows give the same version with the same writer (pyarrow is pinned in constraints.txt).
    """
    h = hashlib.sha256(b"laion-assets release v3\0" + variant.encode() + b"\0")
    h.update(RELEASE_SCHEMA.serialize().to_pybytes())
    for f in files:
        h.update(f"{f['path']}\0{f['rows']}\0{f['sha256']}\n".encode())
    return "r-" + h.hexdigest()[:16]
