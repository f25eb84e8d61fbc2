"""The release checks, run on every variant's rows before anything is published (views `release`,
`release_hashes`, `removal`), and the row-count gate against the previous version."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from laion_assets.core.checks import SqlCheck
from laion_assets.core.lib.validation import require_range
from laion_assets.core.removal.entries import matches_sql

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
