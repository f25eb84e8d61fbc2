"""Building a release's search index from what the pipeline already stored: no image is re-read,
no model is run. A release row is found in its shard through `filtered/<shard>.parquet`
(sample_id -> shard, key, PDQ), its embeddings through the shard's scores (key -> embedding_row in
`img_emb.npy` / `text_emb.npy`), its image through the download status (key -> tar, member).

Only the release's own rows are indexed, so whatever the release removed (takedowns, policy cuts,
duplicates) is in no index; a takedown re-derives the release and the `search_index` asset rebuilds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.schemas.scores import IMG_EMB_FILE, TEXT_EMB_FILE
from laion_assets.core.schemas.release import RELEASE_SCHEMA
from laion_assets.core.search import index as knn
from laion_assets.core.search import layout
from laion_assets.core.storage.layout import ShardPaths

# Columns beside the release's in metadata/0.parquet: where the row's image and embeddings are.
LOCATION_COLUMNS = ("release", "version", "shard", "key", "images_dir", "tar_path", "tar_member",
                    "pdq", "pdq_quality", "embedding_row")


def release_rows(st, variant: str, version: str) -> pa.Table:
    parts = sorted(p for p in st.list(layout.release_dir(variant, version), ".parquet")
                   if p.rsplit("/", 1)[-1].startswith("part-"))
    if not parts:
        raise FileNotFoundError(f"no release parts under {layout.release_dir(variant, version)}")
    return st.read_parquet_many(parts)


def _shards(st, crawls: list[str]) -> list[ShardPaths]:
    out = []
    for crawl in crawls:
        for rel in st.list(f"{crawl}/filtered", ".parquet"):
            name = rel.rsplit("/", 1)[-1].removesuffix(".parquet")
            if name.isdigit():
                out.append(ShardPaths(crawl, name))
    return out


def locate_rows(st, rows: pa.Table) -> tuple[pa.Table, dict[tuple[str, str], str]]:
    """The release rows with LOCATION_COLUMNS (minus release/version), in SAMPLE_ID order, and the
    live embeddings folder of each (crawl, shard). A row found in no shard is left out (counted by
    the caller): it cannot be shown or searched."""
    crawls = sorted(set(rows.column("crawl").to_pylist()))
    filtered, scores, downloads, emb_dirs = [], [], [], {}
    for sp in _shards(st, crawls):
        f = st.read_parquet(sp.filtered, columns=["sample_id", "crawl", "shard", "key", "pdq", "pdq_quality"])
        filtered.append(f)
        if st.exists(sp.scores):
            s = st.read_parquet(sp.scores, columns=["key", "embedding_row"])
            scores.append(s.append_column("crawl", pa.array([sp.crawl] * len(s), pa.string()))
                          .append_column("shard", pa.array([sp.shard] * len(s), pa.string())))
            emb_dirs[(sp.crawl, sp.shard)] = st.live_relpath(sp.embeddings_dir)
        if st.exists(sp.downloads):
            d = st.read_parquet(sp.downloads, columns=["key", "tar_path", "tar_member"])
            images_dir = st.live_relpath(sp.images_dir)
            downloads.append(d.append_column("crawl", pa.array([sp.crawl] * len(d), pa.string()))
                             .append_column("shard", pa.array([sp.shard] * len(d), pa.string()))
                             .append_column("images_dir", pa.array([images_dir] * len(d), pa.string())))
    con = duckdb.connect()
    con.register("r", rows)
    empty = lambda *cols: pa.table({c: pa.array([], pa.string()) for c in cols})  # noqa: E731
    con.register("f", pa.concat_tables(filtered, promote_options="default") if filtered else
                 empty("sample_id", "crawl", "shard", "key", "pdq", "pdq_quality"))
    con.register("s", pa.concat_tables(scores) if scores else empty("key", "embedding_row", "crawl", "shard"))
    con.register("d", pa.concat_tables(downloads) if downloads else
                 empty("key", "tar_path", "tar_member", "crawl", "shard", "images_dir"))
    cols = ", ".join(f'r."{c}"' for c in rows.column_names)
    # A pair kept in one shard and dropped as a duplicate in another has one filtered row only; if
    # several, the first shard's copy is the one shown (deterministic).
    table = con.sql(f"""
        SELECT {cols}, f.shard, f.key, d.images_dir, d.tar_path, d.tar_member, f.pdq,
               CAST(f.pdq_quality AS INTEGER) AS pdq_quality, CAST(s.embedding_row AS INTEGER) AS embedding_row
        FROM r
        JOIN (SELECT * FROM f QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY crawl, shard, key) = 1) f
          ON f.sample_id = r.SAMPLE_ID AND f.crawl = r.crawl
        JOIN s ON s.crawl = f.crawl AND s.shard = f.shard AND s.key = f.key
        LEFT JOIN d ON d.crawl = f.crawl AND d.shard = f.shard AND d.key = f.key
        WHERE s.embedding_row IS NOT NULL
        ORDER BY r.SAMPLE_ID""").to_arrow_table()
    con.close()
    return table, emb_dirs


def gather_embeddings(st, located: pa.Table, emb_dirs: dict[tuple[str, str], str]) -> tuple[np.ndarray, np.ndarray]:
    """(image, text) float32 matrices in `located`'s row order, read from the shards' float16 .npy."""
    n = located.num_rows
    crawl = located.column("crawl").to_pylist()
    shard = located.column("shard").to_pylist()
    row = np.asarray(located.column("embedding_row").to_numpy(zero_copy_only=False), np.int64)
    img = txt = None
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(crawl, shard)):
        groups.setdefault(key, []).append(i)
    for key, idx in sorted(groups.items()):
        base = emb_dirs[key]
        a = np.load(st.local_file(f"{base}/{IMG_EMB_FILE}"), mmap_mode="r")
        b = np.load(st.local_file(f"{base}/{TEXT_EMB_FILE}"), mmap_mode="r")
        if img is None:
            img, txt = np.zeros((n, a.shape[1]), np.float32), np.zeros((n, b.shape[1]), np.float32)
        sel = np.asarray(idx)
        img[sel] = a[row[sel]]
        txt[sel] = b[row[sel]]
    if img is None:
        img = txt = np.zeros((0, 0), np.float32)
    return img, txt


def build_index_dir(st, variant: str, version: str, out: Path, *, factory: str | None = None) -> dict:
    """Write the index files of release `<variant>/<version>` into local folder `out`; returns the
    manifest (also written as index.json)."""
    rows = release_rows(st, variant, version)
    located, emb_dirs = locate_rows(st, rows)
    img, txt = gather_embeddings(st, located, emb_dirs)
    knn.set_threads()
    image_index, spec = knn.build(img, factory)
    text_index, _ = knn.build(txt, spec.factory, nprobe=spec.nprobe)
    n = located.num_rows
    meta = (located.append_column("release", pa.array([variant] * n, pa.string()))
            .append_column("version", pa.array([version] * n, pa.string())))
    meta = meta.select([*RELEASE_SCHEMA.names, *LOCATION_COLUMNS])
    (out / layout.METADATA_DIR).mkdir(parents=True, exist_ok=True)
    pq.write_table(meta, out / layout.METADATA_FILE, compression="zstd")
    knn.write(image_index, out / layout.IMAGE_INDEX)
    knn.write(text_index, out / layout.TEXT_INDEX)
    manifest = {
        "release": variant, "version": version, "rows": n, "release_rows": rows.num_rows,
        "rows_not_indexed": rows.num_rows - n, "dim": int(img.shape[1]) if n else 0,
        "factory": spec.factory, "nprobe": spec.nprobe, "metric": "inner_product (unit vectors: cosine)",
        "model_id": sorted({m for m in meta.column("model_id").to_pylist() if m}),
        "files": list(layout.FILES),
    }
    (out / layout.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def publish_index(st, variant: str, version: str, *, factory: str | None = None) -> dict:
    """Build the index of a published release version into storage and point LATEST at it."""
    with tempfile.TemporaryDirectory(prefix="laion-search-") as tmp:
        out = Path(tmp)
        manifest = build_index_dir(st, variant, version, out, factory=factory)
        base = layout.index_dir(variant, version)
        for name in layout.FILES:
            st.upload_file(out / name, f"{base}/{name}")
    st.write_bytes(f"{version}\n".encode(), layout.latest_pointer(variant))
    return manifest


def subfolders(st, prefix: str) -> list[str]:
    """Names of the folders directly under `prefix` (Storage.list lists files only): local
    directories, or S3 common prefixes."""
    if hasattr(st, "path"):
        d = st.path(prefix)
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
    base = st.key(prefix) + "/"
    names = set()
    for page in st.client.get_paginator("list_objects_v2").paginate(Bucket=st.bucket, Prefix=base, Delimiter="/"):
        names.update(c["Prefix"][len(base):].rstrip("/") for c in page.get("CommonPrefixes", []))
    return sorted(n for n in names if n)


def release_variants(st) -> dict[str, str]:
    """{variant: latest published version} of every variant under releases/ (local or S3)."""
    out = {}
    for name in subfolders(st, "releases"):
        if st.exists(layout.release_latest(name)):
            out[name] = st.read_bytes(layout.release_latest(name)).decode().strip()
    return out


def prune_indices(st, variant: str, keep_version: str) -> list[str]:
    """Delete every index version of `variant` except `keep_version`: a row a takedown removed must
    not stay searchable in an older index. Returns the versions deleted."""
    import shutil

    gone = [v for v in subfolders(st, f"{layout.SEARCH_ROOT}/{variant}") if v != keep_version]
    for version in gone:
        if hasattr(st, "path"):
            shutil.rmtree(st.path(layout.index_dir(variant, version)))
            continue
        for name in (*layout.FILES, layout.CANDIDATES):
            st.client.delete_object(Bucket=st.bucket, Key=st.key(f"{layout.index_dir(variant, version)}/{name}"))
    return gone
