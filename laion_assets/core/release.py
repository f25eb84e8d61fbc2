"""Published releases: LAION-compatible parquet parts, a dataset card and a checksummed manifest.

A release is one *variant* (an NSFW policy, e.g. `research` and `research-safe`) of one build. Its
version is a hash of the variant's name and its rows (every published column, rows sorted by
SAMPLE_ID): publishing the same data twice gives the same version and byte-identical files, any
change (a removal applied, a re-score, a new crawl) gives a new one. The diff against the variant's
previous version names removed rows only by hashes (sha256 of the URL, SAMPLE_ID).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.quality import SqlCheck
from laion_assets.core.release_card import dataset_card
from laion_assets.core.removal import matches_sql
from laion_assets.core.schemas.release import RELEASE_COLUMNS, RELEASE_SCHEMA
from laion_assets.core.validation import ConfigError, require_range

DEFAULT_ROWS_PER_PART = 1_000_000
HASH_COLUMNS = ("md5", "sha1", "pdq", "pdq_quality")  # kept for checks, not published


@dataclass(frozen=True)
class ReleaseVariant:
    """Rows with punsafe over `punsafe_max` (or without a punsafe) are dropped as `nsfw_policy`."""

    name: str
    punsafe_max: float

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError("variant name", self.name, "letters, digits, '-' and '_'")
        require_range(f"variant {self.name} punsafe_max", self.punsafe_max, 0.0, 1.0)


DEFAULT_VARIANTS = (ReleaseVariant("research", 0.95), ReleaseVariant("research-safe", 0.45))


def release_rows_sql(published: str, variant: ReleaseVariant) -> tuple[str, str]:
    """(kept rows with release columns + hash columns, NSFW-policy drops) over `published` (dbt's
    `published_pairs` columns)."""
    cut = f"{float(variant.punsafe_max)!r}"
    kept = f"""
        SELECT sample_id AS SAMPLE_ID, url AS URL, text AS TEXT, CAST(height AS INTEGER) AS HEIGHT,
               CAST(width AS INTEGER) AS WIDTH, license AS LICENSE, nsfw AS NSFW,
               CAST(punsafe AS FLOAT) AS punsafe, CAST(similarity AS FLOAT) AS similarity,
               language AS LANGUAGE, sha256, crawl, crawl_warc_path AS warc_path, warc_offset, page_url,
               model_id, weights_id, CAST(threshold AS FLOAT) AS threshold, punsafe_source,
               md5, sha1, pdq, CAST(pdq_quality AS INTEGER) AS pdq_quality
        FROM {published} WHERE punsafe IS NOT NULL AND punsafe <= {cut}
        ORDER BY SAMPLE_ID"""
    dropped = f"""
        SELECT sample_id, sha256(url) AS url_sha256, 'nsfw_policy' AS reason
        FROM {published} WHERE punsafe IS NULL OR punsafe > {cut}"""
    return kept, dropped


def split_hashes(full: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(published table in RELEASE_SCHEMA, SAMPLE_ID + hash columns for checks)."""
    table = full.select(RELEASE_SCHEMA.names).cast(RELEASE_SCHEMA)
    hashes = full.select(["SAMPLE_ID", *HASH_COLUMNS])
    return table, hashes


class _HashSink:
    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def release_version(table: pa.Table, variant: str = "") -> str:
    """sha256 over the variant name, the schema and every row (Arrow IPC, fixed 64k-row batches).

    The table must be sorted by SAMPLE_ID (release_rows_sql does); nothing about the build (time,
    place, shard layout) is in the table, so the version is a function of the content alone.
    """
    sink = _HashSink()
    sink.h.update(b"laion-assets release v2\0" + variant.encode() + b"\0")
    stream = pa.PythonFile(sink, mode="w")
    with pa.ipc.new_stream(stream, table.schema) as writer:
        for batch in table.combine_chunks().to_batches(max_chunksize=1 << 16):
            writer.write_batch(batch)
    return "r-" + sink.h.hexdigest()[:16]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_category(n: int) -> str:
    """Hugging Face `size_categories` bucket."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if n < bound), "1B<n<10B")


def describe_table(table: pa.Table) -> dict[str, Any]:
    """Counts the card and manifest report, computed from the table itself."""
    with duckdb.connect(":memory:") as con:
        con.register("t", table)
        by = lambda col: {str(k): v for k, v in con.sql(  # noqa: E731
            f"SELECT coalesce(CAST({col} AS VARCHAR), 'unknown'), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()}
        models = [
            {"model_id": m, "weights_id": w, "language": lang, "threshold": round(float(th), 4) if th is not None else None,
             "rows": n}
            for m, w, lang, th, n in con.sql(
                "SELECT model_id, weights_id, LANGUAGE, threshold, count(*) FROM t GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        ]
        licensed = con.sql("SELECT count(*) FROM t WHERE LICENSE IS NOT NULL").fetchall()[0][0]
        return {"rows_by_crawl": by("crawl"), "rows_by_language": by("LANGUAGE"), "thresholds": models,
                "punsafe_sources": by("punsafe_source"), "rows_with_license": licensed}


def write_release(
    table: pa.Table,
    out_dir: Path,
    *,
    version: str,
    variant: ReleaseVariant,
    build: dict[str, Any],
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
) -> dict[str, Any]:
    """Write parts, manifest.json and README.md into `out_dir` (a fresh staging directory).

    `build`: what the release pipeline knows beyond the rows (funnel, removal sources, filters,
    link rot); it must hold no time or local path, so a rebuild gives byte-identical files.
    """
    if table.schema != RELEASE_SCHEMA:
        raise ValueError("release table does not have RELEASE_SCHEMA")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_part)):
        name = f"part-{i:05d}.parquet"
        chunk = table.slice(start, rows_per_part)
        pq.write_table(chunk, out_dir / name, compression="zstd")
        files.append({"path": name, "rows": chunk.num_rows, "bytes": (out_dir / name).stat().st_size,
                      "sha256": _sha256_file(out_dir / name)})
    manifest = {
        "version": version,
        "variant": {"name": variant.name, "punsafe_max": variant.punsafe_max},
        "rows": table.num_rows,
        "columns": [{"name": name, "type": str(typ), "nullable": nullable, "description": desc}
                    for name, (typ, nullable, desc) in RELEASE_COLUMNS.items()],
        "files": files,
        "size_category": size_category(table.num_rows),
        **describe_table(table),
        **build,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out_dir / "README.md").write_text(dataset_card(manifest))
    return manifest


def verify_release_dir(release_dir: Path) -> list[str]:
    """Problems with a written release (empty when sound): schema equals the documented one, file
    checksums and row counts match the manifest, the card's counts equal the table's, the funnel
    adds up row for row."""
    problems: list[str] = []
    manifest = json.loads((release_dir / "manifest.json").read_text())
    card = (release_dir / "README.md").read_text()
    rows = 0
    for f in manifest["files"]:
        path = release_dir / f["path"]
        if _sha256_file(path) != f["sha256"]:
            problems.append(f"{f['path']}: checksum differs from manifest")
        pf = pq.ParquetFile(path)
        if not pf.schema_arrow.equals(RELEASE_SCHEMA):
            problems.append(f"{f['path']}: schema differs from RELEASE_SCHEMA")
        rows += pf.metadata.num_rows
    if rows != manifest["rows"]:
        problems.append(f"parquet holds {rows} rows, manifest says {manifest['rows']}")
    if f"- rows: **{rows}**" not in card:
        problems.append(f"card does not state the table's {rows} rows")
    funnel = manifest.get("funnel")
    if funnel is not None:
        if sum(funnel["dropped"].values()) + rows != funnel["pairs_extracted"]:
            problems.append(f"funnel does not add up: {sum(funnel['dropped'].values())} dropped + {rows} "
                            f"published != {funnel['pairs_extracted']} extracted")
        for reason, n in funnel["dropped"].items():
            if f"| `{reason}` | {n} |" not in card:
                problems.append(f"card does not state {n} rows dropped as {reason}")
    for name, src in manifest.get("removal", {}).get("sources", {}).items():
        if f"| {name} | {src['entries']} | {src['rows_removed']} |" not in card:
            problems.append(f"card's counts for removal source {name} differ from the manifest")
    return problems


@dataclass(frozen=True)
class RowCountVerdict:
    passed: bool
    previous_rows: int
    rows: int
    lost: int
    unexplained: int
    message: str


def row_count_verdict(
    previous_ids: pa.Array | None, current_ids: pa.Array, explained_ids: pa.Array, *,
    max_unexplained_drop_fraction: float,
) -> RowCountVerdict:
    """A release never empties or collapses silently: rows of the previous version missing now must
    be explained by the drop log (removal, NSFW policy, ...), up to `max_unexplained_drop_fraction`."""
    require_range("max_unexplained_drop_fraction", max_unexplained_drop_fraction, 0.0, 1.0)
    n = len(current_ids)
    if n == 0:
        return RowCountVerdict(False, 0 if previous_ids is None else len(previous_ids), 0, 0, 0, "release would be empty")
    if previous_ids is None:
        return RowCountVerdict(True, 0, n, 0, 0, "first release of this variant")
    with duckdb.connect(":memory:") as con:
        con.register("prev", pa.table({"id": previous_ids}))
        con.register("cur", pa.table({"id": current_ids}))
        con.register("expl", pa.table({"id": explained_ids}))
        lost, unexplained = con.sql(
            "SELECT count(*), count(*) FILTER (WHERE id NOT IN (SELECT id FROM expl)) "
            "FROM prev WHERE id NOT IN (SELECT id FROM cur)"
        ).fetchall()[0]
    share = unexplained / max(len(previous_ids), 1)
    ok = share <= max_unexplained_drop_fraction
    msg = (f"{lost} of {len(previous_ids)} previous rows gone, {unexplained} not explained by the drop log "
           f"({share:.2%}; allowed {max_unexplained_drop_fraction:.2%})")
    return RowCountVerdict(ok, len(previous_ids), n, lost, unexplained, msg)


def release_diff(previous: pa.Table, current_ids: pa.Array, reasons: pa.Table) -> pa.Table:
    """Rows of the previous version not in this one, as hashes: (url_sha256, SAMPLE_ID, reason).

    `previous` has SAMPLE_ID and URL; `reasons` has sample_id and reason (drop log + NSFW drops);
    a row gone without a drop-log entry gets `not_in_build` (e.g. its shard is gone).
    """
    with duckdb.connect(":memory:") as con:
        con.register("prev", previous.select(["SAMPLE_ID", "URL"]))
        con.register("cur", pa.table({"id": current_ids}))
        con.register("why", reasons)
        return con.sql("""
            SELECT sha256(p.URL) AS url_sha256, p.SAMPLE_ID,
                   coalesce((SELECT min(w.reason) FROM why w WHERE w.sample_id = p.SAMPLE_ID), 'not_in_build') AS reason
            FROM prev p WHERE p.SAMPLE_ID NOT IN (SELECT id FROM cur)
            ORDER BY reason, url_sha256
        """).to_arrow_table()


_WITH_HASHES = "(SELECT r.*, h.md5, h.sha1, h.pdq, h.pdq_quality FROM release r LEFT JOIN release_hashes h USING (SAMPLE_ID))"

CHECKS = [
    SqlCheck(
        name="release_no_removal_match",
        description="Zero rows match any removal entry (URL/image hashes, URL, domain, prefix, PDQ).",
        sql=matches_sql(_WITH_HASHES, "removal"),
        blocking=True,
    ),
    SqlCheck(
        name="release_unique_pairs",
        description="No (URL, TEXT) pair appears twice in the release.",
        sql="SELECT URL, TEXT, count(*) AS n FROM release GROUP BY URL, TEXT HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="release_unique_images",
        description="No image sha256 appears twice in the release.",
        sql="SELECT sha256, count(*) AS n FROM release GROUP BY sha256 HAVING count(*) > 1 OR sha256 IS NULL",
        blocking=True,
    ),
    SqlCheck(
        name="release_similarity_over_threshold",
        description="similarity is a number in [-1, 1] at or over the row's threshold.",
        sql="SELECT SAMPLE_ID, similarity, threshold FROM release WHERE similarity IS NULL "
        "OR isnan(similarity) OR similarity < -1 OR similarity > 1 OR threshold IS NULL OR similarity < threshold",
        blocking=True,
    ),
    SqlCheck(
        name="release_urls_http",
        description="Every URL is an absolute http(s) URL with a host.",
        sql="SELECT SAMPLE_ID, URL FROM release WHERE NOT regexp_matches(URL, '^https?://[^/\\s?#]+')",
        blocking=True,
    ),
    SqlCheck(
        name="release_provenance",
        description="Every row names its crawl, the crawl's own WARC path (no local path), offset and page.",
        sql="SELECT SAMPLE_ID, warc_path FROM release WHERE crawl IS NULL OR warc_path IS NULL "
        "OR warc_offset IS NULL OR page_url IS NULL OR starts_with(warc_path, '/') "
        "OR starts_with(warc_path, 'file:') OR regexp_matches(warc_path, '^[A-Za-z]:[\\\\/]')",
        blocking=True,
    ),
]
