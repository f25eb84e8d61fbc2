"""The release index: what a full publish leaves builder-side for incremental re-derives.

Under `release-index/` (never offered): every kept pair the release stage did not remove (published
rows and the rows dropped as duplicate or placeholder) with SAMPLE_ID, punsafe, where the pair lives
(crawl, shard, key) and the columns removal entries are matched on (URL, canonical URL and host,
sha256, md5, sha1, PDQ), in files split by SAMPLE_ID range; the lookup files, sorted, in small row
groups, so that k keys read at most k row groups (found by their min/max statistics) whatever the
release's size: per digest an entry can name `keys-<column>-<bucket>.parquet` (its 63-bit integer
key and SAMPLE_ID, buckets by key range), `urls-<i>.parquet` (canonical URL and SAMPLE_ID: a prefix
is a range), `hosts.parquet` (every canonical host: what a domain entry is matched against);
`shared.parquet` (published SAMPLE_IDs the drop log also names); the removal entries applied. A
re-derive rewrites only the row files that held a removed row; the lookup files keep the removed
rows' keys (a superset: a stale key finds no index row, so it matches nothing) until the next full
build writes them anew. `STATE.json`, written last, names them and what the release was derived from
(inputs fingerprint, rules, writer, variants and versions, build facts as they stand after the
purge). `core/release/incremental.py` reads it.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.release.files import ReleaseVariant
from laion_assets.core.release.rules import PLACEHOLDER_MIN_URLS
from laion_assets.core.release.writer import (
    PART_WRITER, SAMPLE_ID_END, ReleaseRows, part_count, part_of, release_version, write_part,
)
from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY, host_sql
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import (
    RELEASE_INDEX_DIR, RELEASE_INDEX_STATE, RELEASES_LATEST, REMOVAL_ENTRIES, SHARD_GLOBS, release_dir, variant_latest,
)

FORMAT = "laion-assets release index v2"
RULES = {"placeholder_min_urls": PLACEHOLDER_MIN_URLS, "pdq_max_distance": PDQ_MAX_DISTANCE,
         "pdq_min_quality": PDQ_MIN_QUALITY}
ENTRY_KEY = ["kind", "value", "source", "listed_on", "host"]


def key_sql(hex_digest: str) -> str:
    """63-bit integer key of a hex digest (its first 16 hex digits): what the candidate pass compares."""
    return f"((('0x' || substr({hex_digest}, 1, 16))::UBIGINT >> 1)::BIGINT)"


# entry kind -> (index key column, the row's hex digest it keys); url_prefix entries go through k_host.
KEYS = {"url_md5": ("k_url_md5", "md5(URL)"), "url_sha1": ("k_url_sha1", "sha1(URL)"),
        "url_sha256": ("k_url_sha256", "sha256(URL)"), "image_md5": ("k_image_md5", "md5"),
        "image_sha1": ("k_image_sha1", "sha1"), "image_sha256": ("k_image_sha256", "sha256"),
        "url": ("k_url", "md5(url_canonical)"), "url_prefix": ("k_host", "md5(host_canonical)")}
_ROW_COLUMNS = ("SAMPLE_ID, punsafe, drop_reason, crawl, shard, key, URL, url_canonical, host_canonical, "
                "sha256, md5, sha1, pdq, pdq_quality")


@dataclass(frozen=True)
class IndexLayout:
    """How the lookup files are cut. `key_file_rows`: keys per key file (and canonical URLs per URL
    file) at most: a column's keys are split into buckets by key range; `key_row_group`: rows per
    row group of a lookup file, what one key's lookup reads at most. Readers need neither: the
    state names the files and the row groups carry their statistics."""

    key_file_rows: int = 16_000_000
    key_row_group: int = 32_768


def key_buckets(rows: int, key_file_rows: int) -> int:
    """Key files per key column for an index of `rows` rows (a power of two)."""
    b = 1
    while rows > b * key_file_rows:
        b *= 2
    return b


def bucket_of(key: int, buckets: int) -> int:
    """The key file (by key range) holding a 63-bit key; `bucket_sql` is its SQL twin."""
    return (key * buckets) >> 63


def bucket_sql(col: str, buckets: int) -> str:
    return f"CAST((CAST({col} AS HUGEINT) * {buckets}) // {1 << 63} AS INTEGER)"


def key_file(col: str, bucket: int) -> str:
    return f"keys-{col}-{bucket:03d}.parquet"


def part_sql(col: str, parts: int) -> str:
    """SQL twin of `writer.part_of`."""
    return f"CAST(((CAST({col} AS HUGEINT) + 1) * {parts} + {SAMPLE_ID_END - 1}) // {SAMPLE_ID_END} - 1 AS INTEGER)"


# --- written by the full build ---------------------------------------------------------------

def build_index(con: duckdb.DuckDBPyConnection, out_dir: Path, rows_per_part: int,
                layout: IndexLayout = IndexLayout()) -> dict[str, Any]:
    """The index files of this build into `out_dir` (from `ReleaseRows`' table `published` and the
    warehouse `wh`), and `shared.parquet`: published SAMPLE_IDs the drop log also names (a removal of
    such a row could publish its other copy, so it takes the full build)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ", ".join(f"{key_sql(expr)} AS {col}" for col, expr in KEYS.values())
    con.execute(f"""CREATE OR REPLACE TABLE release_index AS SELECT *, {keys} FROM (
        SELECT SAMPLE_ID, punsafe, NULL::VARCHAR AS drop_reason, crawl, shard, key, URL,
               coalesce(url_canonical, URL) AS url_canonical, coalesce(host_canonical, {host_sql('URL')}) AS host_canonical,
               sha256, md5, sha1, pdq, pdq_quality FROM published
        UNION ALL
        SELECT s.sample_id, NULL::FLOAT, d.reason, s.crawl, s.shard, s.key, s.url, s.url_canonical, s.host_canonical,
               s.sha256, s.md5, s.sha1, s.pdq, CAST(s.pdq_quality AS INTEGER)
        FROM wh.release_drops d JOIN wh.stg_filtered_pairs s USING (crawl, shard, key)
        WHERE NOT starts_with(d.reason, 'removal:'))""")
    total = con.sql("SELECT count(*) FROM release_index").fetchall()[0][0]
    parts = max(1, math.ceil(total / rows_per_part))
    con.execute(f"ALTER TABLE release_index ADD COLUMN part INTEGER DEFAULT 0")
    con.execute(f"UPDATE release_index SET part = {part_sql('SAMPLE_ID', parts)}")

    key_cols = [col for col, _ in KEYS.values()]

    def write(i: int) -> str:
        cur = con.cursor()
        try:
            t = cur.sql(f"SELECT * EXCLUDE (part, {', '.join(key_cols)}) FROM release_index WHERE part = {i} "
                        "ORDER BY SAMPLE_ID, crawl, shard, key").to_arrow_table()
        finally:
            cur.close()
        pq.write_table(t, out_dir / f"idx-{i:05d}.parquet", compression="zstd")
        return f"idx-{i:05d}.parquet"

    with ThreadPoolExecutor(max_workers=min(parts, available_cpus())) as pool:
        files = list(pool.map(write, range(parts)))
    buckets = key_buckets(total, layout.key_file_rows)
    keys: dict[str, list[str]] = {}
    for col in dict.fromkeys(key_cols):
        keys[col] = []
        for b in range(buckets):
            where = f"{col} IS NOT NULL" + (f" AND {bucket_sql(col, buckets)} = {b}" if buckets > 1 else "")
            _write_sorted(con, f"SELECT {col} AS k, SAMPLE_ID FROM release_index WHERE {where} ORDER BY k, SAMPLE_ID",
                          out_dir / key_file(col, b), layout.key_row_group)
            keys[col].append(key_file(col, b))
    con.execute(f"COPY (SELECT DISTINCT host_canonical AS host FROM release_index WHERE host_canonical IS NOT NULL "
                f"ORDER BY 1) TO '{out_dir / 'hosts.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    # Canonical URLs, sorted (what a url_prefix entry is a range of), cut into files of `layout.key_file_rows`.
    urls = []
    order = "SELECT url_canonical AS u, SAMPLE_ID FROM release_index WHERE url_canonical IS NOT NULL"
    if buckets > 1:
        con.execute(f"CREATE OR REPLACE TEMP TABLE url_order AS SELECT *, (row_number() OVER (ORDER BY u, SAMPLE_ID) - 1) "
                    f"// {layout.key_file_rows} AS f FROM ({order})")
    for i in range(max(1, math.ceil(total / layout.key_file_rows)) if buckets > 1 else 1):
        src = f"SELECT u, SAMPLE_ID FROM url_order WHERE f = {i}" if buckets > 1 else order
        _write_sorted(con, f"{src} ORDER BY u, SAMPLE_ID", out_dir / f"urls-{i:03d}.parquet", layout.key_row_group)
        urls.append(f"urls-{i:03d}.parquet")
    con.execute("DROP TABLE IF EXISTS url_order")
    shared = con.sql("SELECT DISTINCT d.sample_id FROM wh.drop_log d SEMI JOIN published p ON p.SAMPLE_ID = d.sample_id "
                     "ORDER BY 1").to_arrow_table()
    pq.write_table(shared, out_dir / "shared.parquet")
    con.execute("DROP TABLE release_index")
    return {"dir": out_dir, "files": files, "rows": total, "keys": keys, "hosts": "hosts.parquet", "urls": urls}


def _write_sorted(con: duckdb.DuckDBPyConnection, query: str, path: Path, row_group: int) -> None:
    """A lookup file: `query`'s rows, streamed, in row groups of at most `row_group` rows with
    statistics (DuckDB's own writer rounds row groups up to 2,048 rows)."""
    reader = con.sql(query).fetch_record_batch(row_group)
    with pq.ParquetWriter(path, reader.schema, compression="zstd", write_statistics=True) as out:
        buf: list[pa.RecordBatch] = []
        n = 0
        for batch in reader:  # re-cut: DuckDB's batches need not be `row_group` rows each
            buf.append(batch)
            n += batch.num_rows
            while n >= row_group:
                t = pa.Table.from_batches(buf)
                out.write_table(t.slice(0, row_group), row_group_size=row_group)
                rest = t.slice(row_group)
                buf, n = rest.to_batches(), rest.num_rows
        if n:
            out.write_table(pa.Table.from_batches(buf, schema=reader.schema), row_group_size=row_group)


def inputs_fingerprint(st: Storage) -> str:
    """A digest of every shard table dbt reads (filtered, drops, downloads), from their parquet
    footers (row groups, sizes, offsets, statistics): a re-filtered, re-downloaded, added or removed
    shard changes it; reading it costs one footer per shard file, never the rows. Empty when the
    root holds no shard table (then no re-derive is incremental)."""
    import hashlib

    h, seen = hashlib.sha256(FORMAT.encode()), 0
    with duckdb.connect(":memory:") as con:
        st.register_duckdb(con)
        for name, glob in sorted(SHARD_GLOBS.items()):
            pattern = st.uri(glob)
            files = [r[0] for r in con.sql(f"SELECT file FROM glob('{pattern}') ORDER BY 1").fetchall()]
            h.update(f"{name}:{len(files)}\n".encode())
            seen += len(files)
            if files:
                for row in con.sql(f"""SELECT file_name, row_group_id, column_id, num_values, total_compressed_size,
                        stats_min_value, stats_max_value, stats_null_count, data_page_offset
                        FROM parquet_metadata({files!r}) ORDER BY ALL""").fetchall():
                    h.update(repr(row).encode())
    # No shard table under this root (the warehouse was built from elsewhere): nothing to compare.
    return h.hexdigest() if seen else ""


def upload_index(st: Storage, index: dict[str, Any]) -> dict[str, Any]:
    """Upload the index files into a new generation (unreferenced until a STATE.json names them)."""
    gen = f"{RELEASE_INDEX_DIR}/g-{uuid.uuid4().hex[:12]}"
    files = []
    for name in index["files"]:
        st.upload_file(index["dir"] / name, f"{gen}/{name}")
        files.append(f"{gen}/{name}")
    st.upload_file(index["dir"] / "shared.parquet", f"{gen}/shared.parquet")
    keys = {}
    for col, names in index["keys"].items():
        keys[col] = []
        for name in names:
            st.upload_file(index["dir"] / name, f"{gen}/{name}")
            keys[col].append(f"{gen}/{name}")
    st.upload_file(index["dir"] / index["hosts"], f"{gen}/{index['hosts']}")
    keys["urls"] = []
    for name in index["urls"]:
        st.upload_file(index["dir"] / name, f"{gen}/{name}")
        keys["urls"].append(f"{gen}/{name}")
    return {"gen": gen, "files": files, "shared": f"{gen}/shared.parquet", "keys": keys,
            "hosts": f"{gen}/{index['hosts']}"}


def save_full_state(st: Storage, uploaded: dict[str, Any], variants: Sequence[ReleaseVariant],
                    published: dict[str, Any], facts: dict[str, Any], entries: pa.Table, purged: dict[str, Any],
                    options: Any) -> None:
    """Commit STATE.json for a full build (after its purge: the inputs as they are now)."""
    _commit_state(st, uploaded["gen"], uploaded["files"], uploaded["shared"], variants,
                  {n: m["version"] for n, m in published.items()}, _after_purge(facts, purged), entries,
                  options.withdraw, options, keys=uploaded["keys"], hosts=uploaded["hosts"],
                  derived_from=dict(getattr(options, "derived_from", {})))


def _commit_state(st, gen, files, shared, variants, versions, facts, entries, purged, options, *, keys,
                  hosts, derived_from: dict[str, str] | None = None) -> None:
    """`derived_from`: what the full build's warehouse was built from (the dbt project's digest);
    None (an incremental re-derive, which reads no warehouse): the previous state's, kept."""
    previous = _read_state(st)
    if derived_from is None:
        derived_from = (previous or {}).get("derived_from", {})
    st.write_parquet(_entry_keys(entries), f"{gen}/entries.parquet")
    state = {"format": FORMAT, "inputs": inputs_fingerprint(st), "rules": RULES, "writer": PART_WRITER,
             "rows_per_part": options.rows_per_part, "index_files": files, "shared": shared,
             "keys": keys, "hosts": hosts,
             "entries": f"{gen}/entries.parquet", "purged": bool(purged), "facts": facts,
             "order": [v.name for v in variants],
             "variants": {v.name: {"punsafe_max": v.punsafe_max, "version": versions[v.name],
                                   "parts": _part_count(st, v.name, versions[v.name])} for v in variants},
             "derived_from": derived_from}
    st.write_bytes((json.dumps(state, indent=1, sort_keys=True) + "\n").encode(), RELEASE_INDEX_STATE)
    # What the previous state named and this one does not (replaced files hold removed rows) goes.
    keep = {*files, shared, state["entries"], hosts, *(f for fs in keys.values() for f in fs)}
    if previous:
        named = [*previous.get("index_files", []), previous.get("shared"), previous.get("entries"), previous.get("hosts"),
                 *(f for fs in previous.get("keys", {}).values() for f in fs)]
        st.delete([p for p in named if p and p not in keep])


def _part_count(st: Storage, variant: str, version: str) -> int:
    return len(json.loads(st.read_bytes(f"{release_dir(variant, version)}/manifest.json"))["files"])


def _read_state(st: Storage) -> dict[str, Any] | None:
    return json.loads(st.read_bytes(RELEASE_INDEX_STATE)) if st.exists(RELEASE_INDEX_STATE) else None


def _entry_keys(entries: pa.Table) -> pa.Table:
    cols = {c: (entries.column(c).cast(pa.string()) if c in entries.column_names else pa.nulls(entries.num_rows, pa.string()))
            for c in ENTRY_KEY}
    return pa.table(cols)


def _after_purge(facts: dict[str, Any], purged: dict[str, Any] | None) -> dict[str, Any]:
    """The build facts a full build would compute after this purge: the purged samples' status rows
    are no longer `ok` and their pairs are the shards' own drops (same reason, same drop counts)."""
    out = json.loads(json.dumps(facts))
    totals = Counter()
    for counts in (purged or {}).values():
        totals.update({k: v for k, v in counts.items() if isinstance(v, int)})
    stats = out["pipeline_stats"]
    if "images_ok" in stats:
        stats["images_ok"] -= totals["status_rows_marked"]
    if "pairs_over_threshold" in stats:
        stats["pairs_over_threshold"] -= totals["filtered_rows_moved"]
    return out
