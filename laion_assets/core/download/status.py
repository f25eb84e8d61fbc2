"""The fixed reason vocabulary and the per-row outcome, so every input row ends in exactly one row.

`skipped` = a rule decided not to keep the image (an opt-out, the security guard, or content that
is not an acceptable image); running again would decide the same, so a re-run carries it over.
`skipped/removed` = a takedown: the URL matches a removal entry (never fetched) or its image was
purged; carried over like every skipped row.
`failed` = the fetch did not succeed and might next time; a re-run retries exactly these rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import pyarrow as pa

from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA

# reason -> (status, what it means)
REASON_INFO: dict[str, tuple[str, str]] = {
    # opt-outs
    "page_optout": ("skipped", "the page carried an opt-out (recorded by extraction in optout_page)"),
    "robots_txt": ("skipped", "the image host's robots.txt disallows our user-agent token"),
    "x_robots_tag": ("skipped", "X-Robots-Tag noai / noimageai / noml (global or for our token)"),
    "tdm_reservation": ("skipped", "TDMRep: tdm-reservation: 1 header or /.well-known/tdmrep.json"),
    # security / URL
    "invalid_url": ("skipped", "not an absolute http(s) URL with a host"),
    "url_too_long": ("skipped", "URL (or a redirect target) over max_url_chars; never requested"),
    "blocked_address": ("skipped", "host resolves to a non-public address (also after redirects)"),
    # content rules
    "too_small": ("skipped", "body under min_bytes"),
    "too_large": ("skipped", "body (declared or streamed) over max_bytes"),
    "unsupported_content_type": ("skipped", "Content-Type is not image/jpeg, image/png or image/webp"),
    "not_an_image": ("skipped", "magic bytes are not JPEG, PNG or WEBP (e.g. an HTML page)"),
    "decompression_bomb": ("skipped", "header width*height over max_pixels; never decoded"),
    "decode_error": ("skipped", "Pillow could not decode the image (truncated or corrupt)"),
    "output_too_large": ("skipped", "the resized image would exceed max_output_pixels (e.g. 100000x2); never resized"),
    "decode_timeout": ("skipped", "decode/resize/encode ran past decode_timeout_s; its process was killed"),
    # takedowns (core/download/blocklist.py, core/release/purge.py): never fetched again
    "removed": ("skipped", "a removal entry names the URL, its host or the image; `error` holds the "
                "drop reason `removal:<source>`; the image, if it was held, is purged"),
    # fetch failures (retried on a re-run)
    "timeout": ("failed", "connect, read or total timeout"),
    "dns_error": ("failed", "host name did not resolve"),
    "network_error": ("failed", "connection refused/reset or protocol error"),
    "incomplete_body": ("failed", "connection closed before Content-Length bytes arrived"),
    "http_error": ("failed", "final HTTP status was not 200"),
    "rate_limited": ("failed", "429/503 persisted or Retry-After exceeded max_retry_after_s"),
    "too_many_redirects": ("failed", "more than max_redirects hops (includes redirect loops)"),
    "robots_unreachable": ("failed", "robots.txt answered 5xx or could not be fetched (RFC 9309)"),
    "host_backoff": ("failed", "host given up after host_failure_threshold consecutive failures"),
    "shard_timeout": ("failed", "the shard watchdog (shard_timeout_s) fired before this row ended"),
    "internal_error": ("failed", "unexpected exception; the message is in `error`"),
}
REASONS: dict[str, str] = {reason: status for reason, (status, _) in REASON_INFO.items()}
STATUSES = ("ok", "skipped", "failed")


@dataclass
class RowResult:
    """One status row; field names are DOWNLOAD_SCHEMA's columns."""

    key: str
    url: str
    status: str = "failed"
    reason: str | None = None
    error: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    resized_width: int | None = None
    resized_height: int | None = None
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    tar_path: str | None = None
    tar_member: str | None = None
    attempts: int = 0
    elapsed_ms: float | None = None
    fetched_at: dt.datetime | None = None

    def fail(self, reason: str, error: str | None = None) -> RowResult:
        """Mark non-ok with a reason from the vocabulary; the status follows from the reason."""
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.status = REASONS[reason]
        self.reason = reason
        self.error = error[:500] if error else None
        return self


_FIELDS = [f.name for f in fields(RowResult)]
assert _FIELDS == DOWNLOAD_SCHEMA.names, "RowResult must mirror DOWNLOAD_SCHEMA"


def rows_to_table(rows: list[RowResult]) -> pa.Table:
    cols = {name: [getattr(r, name) for r in rows] for name in _FIELDS}
    return pa.table(cols, schema=DOWNLOAD_SCHEMA)


def table_to_rows(table: pa.Table) -> list[RowResult]:
    table = table.select([n for n in _FIELDS if n in table.column_names])
    return [RowResult(**row) for row in table.to_pylist()]


def conform_status(table: pa.Table) -> pa.Table:
    """`rows_to_table(table_to_rows(table))` without building a row object per row: DOWNLOAD_SCHEMA's
    columns in its order (a column the table lacks, e.g. `sha1` of an older file, filled with
    RowResult's default), cast to its types; other columns dropped."""
    cols = []
    for f in fields(RowResult):
        typ = DOWNLOAD_SCHEMA.field(f.name).type
        cols.append(table.column(f.name).cast(typ) if f.name in table.column_names
                    else pa.array([f.default] * table.num_rows, typ))
    return pa.Table.from_arrays(cols, schema=DOWNLOAD_SCHEMA)


def summarize(rows: list[RowResult], elapsed_s: float) -> dict[str, int | float]:
    """Flat stats: counts per status and reason (all reasons present, 0 when unseen), bytes, speed."""
    stats: dict[str, int | float] = {"rows": len(rows)}
    for s in STATUSES:
        stats[f"status_{s}"] = 0
    for r in REASONS:
        stats[f"reason_{r}"] = 0
    total_bytes = 0
    attempts = 0
    for row in rows:
        stats[f"status_{row.status}"] += 1
        if row.reason:
            stats[f"reason_{row.reason}"] += 1
        total_bytes += row.bytes or 0
        attempts += row.attempts or 0
    stats["bytes"] = total_bytes
    stats["attempts"] = attempts
    stats["elapsed_s"] = round(elapsed_s, 3)
    stats["images_per_s"] = round(stats["status_ok"] / elapsed_s, 2) if elapsed_s > 0 else 0.0
    return stats
