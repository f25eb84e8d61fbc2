"""The release checks, run on every variant's rows before anything is published (views `release`,
`release_hashes`, `removal`), and the row-count gate against the previous version."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from laion_assets.core.checks import SqlCheck
from laion_assets.core.lib.validation import require_range
from laion_assets.core.removal.entries import matches_sql

_WITH_HASHES = ("(SELECT r.*, h.md5, h.sha1, h.pdq, h.pdq_quality, h.url_canonical AS URL_CANONICAL, "
                "h.host_canonical AS HOST_CANONICAL FROM release r LEFT JOIN release_hashes h USING (SAMPLE_ID))")

CHECKS = [
    SqlCheck(
        name="release_no_removal_match",
        description="Zero rows match any removal entry (URL/image hashes, URL, domain, prefix, PDQ).",
        sql=matches_sql(_WITH_HASHES, "removal", canonical=True),
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


@dataclass(frozen=True)
class LossLimits:
    """How much of a variant's previous version one publish may take out before it is held.

    `max_removal_fraction`: rows removed by removal lists (a public-suffix entry or a broad prefix
    takes out whole sites); `max_lost_fraction`: rows lost for any reason (removals, failed
    downloads, dedup, policy), so a download outage cannot empty a release through explained drops.
    Holds apply only above `min_rows_held` rows. A hold is released by naming what was checked:
    `confirmed_sources` (removal sources whose removals are intended) or `confirm_row_loss`.
    """

    max_removal_fraction: float = 0.01
    max_lost_fraction: float = 0.2
    min_rows_held: int = 10
    confirmed_sources: tuple[str, ...] = ()
    confirm_row_loss: bool = False

    def __post_init__(self) -> None:
        require_range("max_removal_fraction", self.max_removal_fraction, 0.0, 1.0)
        require_range("max_lost_fraction", self.max_lost_fraction, 0.0, 1.0)


def lost_by_reason(previous_ids: pa.Array, current_ids: pa.Array, reasons: pa.Table) -> dict[str, int]:
    """Rows of the previous version missing now, counted by their drop reason (`not_in_build` when none)."""
    with duckdb.connect(":memory:") as con:
        con.register("prev", pa.table({"id": previous_ids}))
        con.register("cur", pa.table({"id": current_ids}))
        con.register("why", reasons)
        return dict(con.sql("""
            SELECT coalesce(w.reason, 'not_in_build'), count(*) FROM prev p
            LEFT JOIN (SELECT sample_id, min(reason) AS reason FROM why GROUP BY 1) w ON w.sample_id = p.id
            WHERE p.id NOT IN (SELECT id FROM cur) GROUP BY 1 ORDER BY 1
        """).fetchall())


def loss_holds(lost: dict[str, int], previous_rows: int, limits: LossLimits) -> list[str]:
    """Why this publish is held (empty: it may go): each message names the reasons and counts."""
    if previous_rows == 0:
        return []
    holds = []
    removal = {r: n for r, n in lost.items()
               if r.startswith("removal:") and r.removeprefix("removal:") not in limits.confirmed_sources}
    removed = sum(removal.values())
    if removed > max(limits.min_rows_held, limits.max_removal_fraction * previous_rows):
        named = ", ".join(f"{r} {n}" for r, n in sorted(removal.items(), key=lambda x: -x[1]))
        holds.append(f"removal lists would take out {removed} of {previous_rows} rows ({removed / previous_rows:.1%}; "
                     f"held over {limits.max_removal_fraction:.1%}): {named}; check the entries (a public suffix "
                     "or a broad prefix?) and confirm each intended source (confirm_removal_sources)")
    total = sum(lost.values())
    if not limits.confirm_row_loss and total > max(limits.min_rows_held, limits.max_lost_fraction * previous_rows):
        downloads = sum(n for r, n in lost.items() if r.startswith("not_downloaded:"))
        top = ", ".join(f"{r} {n}" for r, n in sorted(lost.items(), key=lambda x: -x[1])[:5])
        cause = (f"; {downloads} because their images were not downloaded (a download outage?)" if downloads else "")
        holds.append(f"{total} of {previous_rows} previous rows would be lost ({total / previous_rows:.1%}; held over "
                     f"{limits.max_lost_fraction:.0%}){cause}: {top}; confirm with confirm_row_loss")
    return holds
