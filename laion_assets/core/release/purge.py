"""Purge what the builder holds of removed samples: their images, embeddings and score rows.

A re-derive drops removed rows from the release (dbt's `drop_log`, reason `removal:<source>`), but
the shards still hold the images (WebDataset tars), the float16 embeddings and the score rows.
`purge_removed` deletes them, shard by shard, through the storage commit protocol, so a kill at any
point leaves the old or the new state of each directory:
1. images: a new `images/<shard>/v-<hash>/` whose tars lack the removed samples' members (the
   other members copied with their headers and bytes; untouched tars copied whole), committed by
   the status table, in which the removed rows become `skipped/removed` (`error` = the drop reason):
   one row per URL stays the contract, and skipped rows are never fetched again;
2. scores: a new `scores/<shard>/v-<hash>/` without the removed rows' embeddings (the rest keep their
   order, `embedding_row` renumbered), committed by the score table without their rows;
3. filter: the rows move from `filtered/<shard>.parquet` to the shard's drop log with the same
   reason, exactly what a re-run of `filtered_pairs` now writes.
Each step checks what is left to do, so a second call (or one after a kill between steps) finishes
the job and otherwise changes no byte.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laion_assets.core.download.blocklist import REMOVED, removal_reason, removed_row
from laion_assets.core.download.keys import image_member, member_key
from laion_assets.core.download.status import conform_status, rows_to_table, table_to_rows
from laion_assets.core.schemas.filtered import DROP_LOG_SCHEMA, FILTERED_SCHEMA
from laion_assets.core.schemas.scores import SCORE_SCHEMA
from laion_assets.core.storage.layout import MANIFESTS_DIR, REMOVAL_ENTRIES, WAREHOUSE, ShardPaths

IMG_EMB_FILE, TEXT_EMB_FILE = "img_emb.npy", "text_emb.npy"  # core/clip/scoring.py (no torch here)
COUNTS = ("status_rows_marked", "samples_removed", "tar_members_removed", "tars_rewritten",
          "score_rows_removed", "embedding_rows_removed", "filtered_rows_moved", "drop_reasons_changed",
          "bytes_freed", "keys_not_found")
PAGE_OPT_OUT = "opt_out:page_optout"  # the filter's first rule: it wins over a removal


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_dir():  # nothing the stages write today; carried whole so that no file is lost
        shutil.copytree(src, dst, copy_function=_link_or_copy)
        return
    try:
        os.link(src, dst)  # same filesystem (a local root): no copy of bytes that do not change
    except OSError:
        shutil.copyfile(src, dst)


_BLOCK = tarfile.BLOCKSIZE


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _pax_path(data: bytes) -> str | None:
    """The `path` record of a PAX extended header (records are `<len> <key>=<value>\n`)."""
    pos, found = 0, None
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        length = int(data[pos:data.index(b" ", pos)])
        key, _, value = data[data.index(b" ", pos) + 1:pos + length - 1].partition(b"=")
        if key == b"path":
            found = value.decode("utf-8")
        pos += length
    return found


def _spans_fast(path: Path) -> list[tuple[str, int, int]] | None:
    """(name, start, end) of every member, read from the 512-byte headers directly (tarfile's
    parser costs ~40 us a member); None on anything but plain ustar/PAX headers (then tarfile)."""
    out: list[tuple[str, int, int]] = []
    size_total = path.stat().st_size
    with open(path, "rb") as f:
        pos, start, long_name = 0, None, None
        while pos + _BLOCK <= size_total:
            f.seek(pos)
            hdr = f.read(_BLOCK)
            if hdr == tarfile.NUL * _BLOCK:
                return out if start is None else None
            try:
                if hdr[124] & 0x80 or int(hdr[148:156].strip(b"\0 ") or b"0", 8) != \
                        sum(hdr[:148]) + 8 * 32 + sum(hdr[156:]):
                    return None
                size = int(hdr[124:136].strip(b"\0 ") or b"0", 8)
            except ValueError:
                return None
            kind = hdr[156:157]
            data_end = pos + _BLOCK + _padded(size)
            start = pos if start is None else start
            if kind == b"x":
                f.seek(pos + _BLOCK)
                long_name = _pax_path(f.read(size)) or long_name
                pos = data_end
                continue
            if kind not in (b"0", b"\0", b"5"):
                return None  # links, GNU long names, global headers...: let tarfile decide
            name = hdr[:100].split(b"\0", 1)[0].decode("utf-8")
            prefix = hdr[345:500].split(b"\0", 1)[0].decode("utf-8") if hdr[257:262] == b"ustar" else ""
            full = long_name or (f"{prefix}/{name}" if prefix else name)
            out.append((full.rstrip("/") if kind == b"5" else full, start, data_end))
            pos, start, long_name = data_end, None, None
    return None  # no end-of-archive blocks: a cut tar goes through tarfile (which says what is wrong)


def _spans(path: Path) -> list[tuple[str, int, int]]:
    spans = _spans_fast(path)
    if spans is not None:
        return spans
    with tarfile.open(path, "r") as tin:
        return [(m.name, m.offset, m.offset_data + (_padded(m.size) if m.isreg() else 0)) for m in tin]


def rewrite_tar(src: Path, dst: Path, drop_stems: set[str]) -> tuple[int, set[str]]:
    """Copy `src` to `dst` without the members whose key (name before the first dot) is in
    `drop_stems`. Every other member is copied as its raw bytes (headers, PAX records, data and
    padding: byte-identical), in order, then the end-of-archive blocks as tarfile writes them. No
    file when nothing is left. Returns (members dropped, stems dropped)."""
    dropped, stems = 0, set()
    spans: list[tuple[int, int]] = []  # [start, end) of each run of kept members in src
    for name, start, end in _spans(src):
        stem = name.split(".", 1)[0]
        if stem in drop_stems:
            dropped += 1
            stems.add(stem)
        elif spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)  # adjacent kept members: one copy
        else:
            spans.append((start, end))
    if not spans:
        return dropped, stems
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for start, end in spans:
            fin.seek(start)
            left = end - start
            while left:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    raise ValueError(f"{src}: truncated inside a member")
                fout.write(chunk)
                left -= len(chunk)
        written = fout.tell() + 2 * _BLOCK
        fout.write(tarfile.NUL * (2 * _BLOCK + (-written % tarfile.RECORDSIZE)))
    return dropped, stems


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def _purge_images(st: Any, paths: ShardPaths, reasons: dict[str, str], counts: dict[str, int]) -> None:
    if not st.exists(paths.downloads):
        counts["keys_not_found"] += len(reasons)
        return
    # Columnar: only the rows of removed keys become row objects (a shard holds tens of thousands).
    status = conform_status(st.read_parquet(paths.downloads))
    keys = pa.array(sorted(reasons), pa.string())
    hit = pc.is_in(status["key"], value_set=keys)
    counts["keys_not_found"] += len(set(reasons) - set(pc.unique(status["key"].filter(hit)).to_pylist()))
    todo_mask = pc.and_(hit, pc.fill_null(pc.not_equal(status["reason"], REMOVED), True))
    todo = np.flatnonzero(todo_mask.to_numpy(zero_copy_only=False))
    if not len(todo):
        return
    todo_rows = table_to_rows(status.take(pa.array(todo, pa.int64())))
    stems_by_tar: dict[str, set[str]] = defaultdict(set)
    for r in todo_rows:
        if r.tar_path:
            stems_by_tar[r.tar_path].add(image_member(r.key, r.tar_member).rpartition(".")[0])
    old_dir = st.local_dir(paths.images_dir) if st.live_version(paths.images_dir) is not None else None
    before = _dir_bytes(old_dir) if old_dir is not None else 0
    with st.staging_dir(paths.images_dir, record=paths.downloads) as out:
        if old_dir is not None:
            for src in sorted(p for p in old_dir.iterdir() if not p.name.startswith(".")):
                stems = stems_by_tar.get(src.name) if src.is_file() else None
                if not stems:
                    _link_or_copy(src, out / src.name)
                    continue
                dropped, found = rewrite_tar(src, out / src.name, stems)
                counts["tar_members_removed"] += dropped
                counts["samples_removed"] += len(found)
                counts["tars_rewritten"] += 1
        marked = rows_to_table([removed_row(r.key, r.url, reasons[r.key], r) for r in todo_rows])
        order = np.arange(status.num_rows, dtype=np.int64)
        order[todo] = status.num_rows + np.arange(len(todo), dtype=np.int64)  # each row in its place
        new_status = pa.concat_tables([status, marked]).take(pa.array(order))
        counts["status_rows_marked"] += len(todo)
        after = _dir_bytes(out)
        st.write_parquet(new_status.combine_chunks().replace_schema_metadata(None), paths.downloads)
    counts["bytes_freed"] += before - after


def _purge_scores(st: Any, paths: ShardPaths, keys: set[str], counts: dict[str, int]) -> None:
    if not st.exists(paths.scores):
        return
    scores = st.read_parquet(paths.scores)
    gone = pc.is_in(scores["key"], value_set=pa.array(sorted(keys), pa.string()))
    if not pc.any(gone).as_py():
        return
    kept = scores.filter(pc.invert(gone))
    valid = pc.is_valid(kept["embedding_row"]).to_numpy(zero_copy_only=False)
    old_rows = pc.fill_null(kept["embedding_row"], -1).to_numpy(zero_copy_only=False).astype(np.int64)
    used = np.sort(old_rows[valid])
    old_dir = st.local_dir(paths.embeddings_dir) if st.live_version(paths.embeddings_dir) is not None else None
    before = _dir_bytes(old_dir) if old_dir is not None else 0
    with st.staging_dir(paths.embeddings_dir, record=paths.scores) as out:
        n_old = 0
        if old_dir is not None:
            for src in sorted(p for p in old_dir.iterdir() if not p.name.startswith(".")):
                if src.is_file() and src.name in (IMG_EMB_FILE, TEXT_EMB_FILE):
                    emb = np.load(src)
                    n_old = emb.shape[0]
                    np.save(out / src.name, emb[used])
                else:
                    _link_or_copy(src, out / src.name)
        new_rows = np.full(len(old_rows), -1, np.int64)
        new_rows[valid] = np.searchsorted(used, old_rows[valid])
        column = pa.array(new_rows.astype(np.int32), pa.int32(), mask=~valid)
        kept = kept.set_column(kept.schema.get_field_index("embedding_row"), "embedding_row", column)
        counts["score_rows_removed"] += scores.num_rows - kept.num_rows
        counts["embedding_rows_removed"] += n_old - len(used) if old_dir is not None else 0
        after = _dir_bytes(out)
        st.write_parquet(kept.cast(SCORE_SCHEMA), paths.scores)
    counts["bytes_freed"] += before - after


def _purge_filtered(st: Any, paths: ShardPaths, reasons: dict[str, str], counts: dict[str, int]) -> None:
    """Kept pairs move to the drop log, and drop-log rows (e.g. below_threshold) take the removal
    reason: what `filtered_pairs` writes once the download row is `skipped/removed`."""
    if not st.exists(paths.filtered):
        return
    filtered = st.read_parquet(paths.filtered)
    gone = pc.is_in(filtered["key"], value_set=pa.array(sorted(reasons), pa.string()))
    drops = st.read_parquet(paths.drops).cast(DROP_LOG_SCHEMA) if st.exists(paths.drops) \
        else DROP_LOG_SCHEMA.empty_table()
    # Drop-log rows of a removed key take its reason (the page opt-out wins): columnar, no row objects.
    keys = pa.array(sorted(reasons), pa.string())
    at = pc.index_in(drops["key"], value_set=keys)
    old = drops["reason"]
    mapped = pc.take(pa.array([reasons[k] for k in keys.to_pylist()], pa.string()), at)
    take = pc.and_(pc.is_valid(at), pc.fill_null(pc.not_equal(old, PAGE_OPT_OUT), True))
    changed = pc.sum(pc.and_(take, pc.fill_null(pc.not_equal(old, mapped), True))).as_py() or 0
    moved = filtered.filter(gone)
    if not moved.num_rows and not changed:
        return
    drops = drops.set_column(drops.schema.get_field_index("reason"), "reason", pc.if_else(take, mapped, old)).cast(
        DROP_LOG_SCHEMA)
    new_drops = pa.table({
        "crawl": moved["crawl"], "shard": moved["shard"], "key": moved["key"], "url": moved["url"],
        "text": moved["text"], "sample_id": moved["sample_id"],
        "reason": pa.array([reasons[k] for k in moved["key"].to_pylist()], pa.string()),
    }, schema=DROP_LOG_SCHEMA)
    drops = pa.concat_tables([drops, new_drops]).sort_by("key")  # the filter stage's order
    # the drop log first: a kill between the two writes leaves a pair in both, which the next call
    # (or a re-run of filtered_pairs) resolves; never in neither
    st.write_parquet(drops.cast(DROP_LOG_SCHEMA), paths.drops)
    if moved.num_rows:
        st.write_parquet(filtered.filter(pc.invert(gone)).cast(FILTERED_SCHEMA), paths.filtered)
    counts["filtered_rows_moved"] += moved.num_rows
    counts["drop_reasons_changed"] += changed


def purge_removed(st: Any, removed: pa.Table) -> dict[str, dict[str, int]]:
    """Delete the images, embeddings and score rows of `removed` (crawl, shard, key, sample_id and
    optionally `reason`, the drop reason `removal:<source>`) from the stored shards.

    Returns, per shard `<crawl>/<shard>` named by `removed`, the counts in COUNTS (`keys_not_found`:
    keys the shard has no status row for, e.g. a drop log from another build). Idempotent."""
    missing = {"crawl", "shard", "key"} - set(removed.column_names)
    if missing:
        raise ValueError(f"removed rows need columns crawl, shard, key (missing: {sorted(missing)})")
    has_reason = "reason" in removed.column_names
    by_shard: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    cols = ["crawl", "shard", "key"] + (["reason"] if has_reason else [])
    for r in removed.select(cols).to_pylist():
        reason = r.get("reason") or removal_reason("unknown")
        if not reason.startswith("removal:"):
            raise ValueError(f"{r['crawl']}/{r['shard']} key {r['key']}: {reason!r} is not a removal reason")
        by_shard[(r["crawl"], r["shard"])][r["key"]] = reason
    out: dict[str, dict[str, int]] = {}
    for (crawl, shard), reasons in sorted(by_shard.items()):
        for key in reasons:
            member_key(shard, key)  # a key that cannot name a member is bad input, not a no-op
        paths = ShardPaths(crawl, shard)
        counts = dict.fromkeys(COUNTS, 0)
        _purge_images(st, paths, reasons, counts)
        _purge_scores(st, paths, set(reasons), counts)
        _purge_filtered(st, paths, reasons, counts)
        out[f"{crawl}/{shard}"] = counts
    return out


def removed_in_warehouse(st: Any) -> pa.Table:
    """The rows dbt's `drop_log` dropped by a removal entry (crawl, shard, key, sample_id, reason),
    from `<root>/warehouse.duckdb` as the last `dbt build` left it."""
    import duckdb

    path = st.local_file(WAREHOUSE)
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(
            "SELECT crawl, shard, key, sample_id, min(reason) AS reason FROM drop_log "
            "WHERE starts_with(reason, 'removal:') GROUP BY ALL ORDER BY crawl, shard, key"
        ).to_arrow_table()


def purge_released_removals(st: Any) -> dict[str, dict[str, int]]:
    """`purge_removed` for every row the warehouse's drop log removed: call after a re-derive."""
    return purge_removed(st, removed_in_warehouse(st))


_MATCH_COLUMNS = {"sha256": pa.string(), "md5": pa.string(), "sha1": pa.string(), "pdq": pa.string(),
                  "pdq_quality": pa.int32()}


def removed_in_downloads(st: Any, entries: pa.Table) -> pa.Table:
    """Every stored image (an `ok` status row of any shard of any crawl with a manifest) that a
    removal entry matches, by the release's own rules (`removal.matches_sql`: URL kinds, image
    hashes, PDQ): also the images the release never saw (below threshold, opted out, duplicates).
    Columns crawl, shard, key, sample_id (null), reason (`removal:<smallest source>`)."""
    import duckdb

    from laion_assets.core.removal.entries import matches_sql

    tables = []
    for manifest in st.list(MANIFESTS_DIR, ".parquet"):
        crawl = manifest.rsplit("/", 1)[1].removesuffix(".parquet")
        for status_path in st.list(f"{crawl}/images", ".parquet"):
            shard = status_path.rsplit("/", 1)[1].removesuffix(".parquet")
            t = st.read_parquet(status_path)
            t = t.filter(pc.equal(t["status"], "ok"))
            cols = {"crawl": pa.array([crawl] * t.num_rows, pa.string()),
                    "shard": pa.array([shard] * t.num_rows, pa.string()), "key": t["key"], "URL": t["url"]}
            for name, typ in _MATCH_COLUMNS.items():
                cols[name] = t[name].cast(typ) if name in t.column_names else pa.nulls(t.num_rows, typ)
            tables.append(pa.table(cols))
    empty = pa.table({"crawl": pa.array([], pa.string()), "shard": pa.array([], pa.string()),
                      "key": pa.array([], pa.string()), "sample_id": pa.array([], pa.int64()),
                      "reason": pa.array([], pa.string())})
    if not tables or not entries.num_rows:
        return empty
    rows = pa.concat_tables(tables)
    rows = rows.append_column("SAMPLE_ID", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    with duckdb.connect(":memory:") as con:
        con.register("stored", rows)
        con.register("entries_in", entries.select(["kind", "value", "source"]))
        return con.sql(f"""
            SELECT r.crawl, r.shard, r.key, NULL::BIGINT AS sample_id, 'removal:' || min(m.source) AS reason
            FROM ({matches_sql('stored', 'entries_in')}) m JOIN stored r USING (SAMPLE_ID)
            GROUP BY ALL ORDER BY r.crawl, r.shard, r.key
        """).to_arrow_table().cast(empty.schema)


def purge_stored_removals(st: Any) -> dict[str, dict[str, int]]:
    """`purge_removed` for every stored image the removal list matches (`removed_in_downloads`),
    whether or not a release ever held it: the audit sweep, reading every shard's status table."""
    from laion_assets.core.download.blocklist import read_removal_entries

    return purge_removed(st, removed_in_downloads(st, read_removal_entries(st, REMOVAL_ENTRIES)))
