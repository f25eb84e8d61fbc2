"""Never fetch a removed URL or host again: rows that a removal entry names become `skipped/removed`
BEFORE the downloader sees them, in every shard of every crawl.

Two things decide: the removal list (`removal/entries.parquet`, kinds `url`, `url_prefix`, `domain`
and the URL hashes `url_md5`/`url_sha1`/`url_sha256`, matched by the same rules as
`dbt/models/removal_matches.sql`), and the shard's previous status (a row purged before, e.g. by an
image-hash entry, which no URL rule can see, stays removed while its URL is the same). Image-hash
and PDQ entries can only match after a fetch: those images are purged by `core/release/purge.py`.
The status row of a removed URL carries the drop reason `removal:<source>` in `error`, which the
filter stage turns into the pair's drop reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from laion_assets.core.removal.canonical import canonical_parts, is_ip_host
from laion_assets.core.removal.entries import REMOVAL_SCHEMA

from .shard import DownloadResult, download_shard
from .status import REASONS, RowResult, rows_to_table, table_to_rows

REMOVED = "removed"
URL_KINDS = ("url", "url_prefix", "domain", "url_md5", "url_sha1", "url_sha256")


def url_host(url: str) -> str:
    """The canonical host of `url` (`core/removal/canonical.py`), "" when it has none."""
    return canonical_parts(url)[1] or ""


def removal_reason(source: str) -> str:
    return f"removal:{source}"


class UrlBlocklist:
    """The URL-side removal entries, indexed once: `source_for(url)` is the (smallest) source of an
    entry matching the URL, or None. The rules are `matches_sql`'s: url, url_prefix and domain
    entries (stored canonical, with their canonical `host`) are compared with the URL's canonical
    form, so every spelling of a removed URL or host is refused; a domain entry matches the host or
    a dot-suffix of it, never a suffix of an IP address; URL hashes are of the URL as written (as
    the lists that carry them compute them). Cost per URL: one WHATWG parse, one dict lookup per
    host label, one digest per hash kind present."""

    def __init__(self, entries: pa.Table):
        self.exact: dict[str, dict[str, str]] = {k: {} for k in URL_KINDS}
        self.prefixes: dict[str, list[tuple[str, str]]] = {}
        cols = ["kind", "value", "source"] + (["host"] if "host" in entries.column_names else [])
        rows = entries.select(cols).to_pylist() if entries.num_rows else []
        for r in rows:
            kind, value, source = r["kind"], r["value"], r["source"]
            if kind == "url_prefix":
                host = r.get("host") or url_host(value)
                self.prefixes.setdefault(host, []).append((value, source))
            elif kind in self.exact:
                book = self.exact[kind]
                book[value] = min(source, book.get(value, source))
        self.hash_kinds = [k for k in ("url_md5", "url_sha1", "url_sha256") if self.exact[k]]
        self.by_form = bool(self.exact["url"] or self.exact["domain"] or self.prefixes)
        self.size = sum(len(v) for v in self.exact.values()) + sum(len(v) for v in self.prefixes.values())

    def __len__(self) -> int:
        return self.size

    def source_for(self, url: str) -> str | None:
        found: list[str] = []
        for kind in self.hash_kinds:
            digest = hashlib.new(kind.split("_", 1)[1], url.encode("utf-8")).hexdigest()
            if (s := self.exact[kind].get(digest)) is not None:
                found.append(s)
        if self.by_form:
            curl, host = canonical_parts(url)
            curl = curl or url  # no canonical form: the URL as written stands in (as in SQL)
            if (s := self.exact["url"].get(curl)) is not None:
                found.append(s)
            if host:
                domains = self.exact["domain"]
                if domains:
                    labels = [host] if is_ip_host(host) else host.split(".")
                    for i in range(len(labels)):
                        if (s := domains.get(".".join(labels[i:]))) is not None:
                            found.append(s)
                found.extend(src for prefix, src in self.prefixes.get(host, ()) if curl.startswith(prefix))
        return min(found) if found else None


def read_removal_entries(st: Any, relpath: str) -> pa.Table:
    """The removal list at `relpath` under storage `st`, or an empty one when none was built yet."""
    return st.read_parquet(relpath) if st.exists(relpath) else REMOVAL_SCHEMA.empty_table()


def removed_row(key: str, url: str, reason: str, previous: RowResult | None = None) -> RowResult:
    """A `skipped/removed` status row; a previous fetch's history (sha256 of the original bytes, HTTP
    status, attempts, time) is kept, everything that describes or locates the image is not."""
    row = RowResult(key=key, url=url)
    if previous is not None:
        row.http_status, row.sha256 = previous.http_status, previous.sha256
        row.attempts, row.fetched_at = previous.attempts, previous.fetched_at
    row.fail(REMOVED, reason)
    assert REASONS[REMOVED] == "skipped"
    return row


def split_removed(pairs: pa.Table, entries: pa.Table, previous_status: pa.Table | None = None
                  ) -> tuple[pa.Table, pa.Table]:
    """(the pairs still to download, status rows of the removed ones): a pair is removed when a URL
    entry matches it or its previous status row (same key and URL) is `skipped/removed`."""
    blocklist = UrlBlocklist(entries)
    before: dict[str, RowResult] = {}
    if previous_status is not None and previous_status.num_rows:
        before = {r.key: r for r in table_to_rows(previous_status)}
    keys, urls = pairs["key"].to_pylist(), pairs["url"].to_pylist()
    keep: list[bool] = []
    removed: list[RowResult] = []
    any_entry = len(blocklist) > 0
    for key, url in zip(keys, urls):
        prev = before.get(key)
        prev = prev if prev is not None and prev.url == url else None
        source = blocklist.source_for(url) if any_entry else None
        reason = removal_reason(source) if source is not None else None
        if reason is None and prev is not None and prev.reason == REMOVED:
            reason = prev.error or removal_reason("unknown")
        keep.append(reason is None)
        if reason is not None:  # an ok image of this row is not carried into the new version
            removed.append(removed_row(key, url, reason, prev))
    return pairs.filter(pa.array(keep, pa.bool_())), rows_to_table(removed)


def download_shard_unless_removed(pairs: pa.Table, out_dir: Path, *, entries: pa.Table,
                                  previous_status: pa.Table | None = None, history: pa.Table | None = None,
                                  **kwargs: Any) -> DownloadResult:
    """`download_shard` over the pairs no removal names; the removed ones get their status row
    without any request. The status keeps one row per input pair, in input order. `history` is the
    shard's last status even when the run does not carry rows over (`retry_failed_only=False`): a
    purged row stays removed either way."""
    todo, removed = split_removed(pairs, entries, history if history is not None else previous_status)
    result = download_shard(todo, out_dir, previous_status=previous_status, **kwargs)
    if not removed.num_rows:
        return result
    status = pa.concat_tables([result.status, removed])
    position = {k: i for i, k in enumerate(status["key"].to_pylist())}
    status = status.take(pa.array([position[k] for k in pairs["key"].to_pylist()], pa.int64()))
    stats = dict(result.stats)
    n = removed.num_rows
    stats["rows"] = stats.get("rows", 0) + n
    stats["status_skipped"] = stats.get("status_skipped", 0) + n
    stats[f"reason_{REMOVED}"] = stats.get(f"reason_{REMOVED}", 0) + n
    stats["removed_before_fetch"] = n
    return DownloadResult(status, result.tar_paths, stats)
