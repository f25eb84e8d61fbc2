"""Cost of a takedown on the builder's side: the downloader's removal pre-filter, and a shard purge.

1. Pre-filter: `split_removed` over `--rows` pairs against `--entries` removal entries (every URL
   kind), next to the downloader's own per-row setup (`Rows.from_pairs`) on the same pairs.
2. Purge: a local shard of `--images` samples (WebDataset tars as `TarWriter` writes them, status
   rows, scores and float16 embeddings), `--removed` samples spread over it purged, next to
   rewriting the shard whole: every byte of its images and embeddings dirs read, written and
   committed through the same `staging_dir` (what any new version without hard links costs).
Last line: `bench: purge prefilter_us_per_row=.. setup_us_per_row=.. purge_s=.. rewrite_s=..
freed_mb=.. ratio=<rewrite_s / purge_s>`. CPU time is printed beside wall for each.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from laion_assets.core.download.blocklist import split_removed
from laion_assets.core.download.engine import Rows
from laion_assets.core.download.status import RowResult, rows_to_table
from laion_assets.core.download.writer import TarWriter
from laion_assets.core.release.purge import purge_removed
from laion_assets.core.removal.entries import REMOVAL_SCHEMA
from laion_assets.core.schemas.scores import SCORE_SCHEMA
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.core.storage.local import LocalStorage


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def prefilter(rows: int, entries: int) -> tuple[float, float]:
    urls = [f"https://img{i % 5000}.host{i % 977}.example/path/{i}/photo.jpg" for i in range(rows)]
    pairs = pa.table({"key": [f"{i:09d}" for i in range(rows)], "url": urls})
    kinds = ["url", "url_prefix", "domain", "url_md5", "url_sha1", "url_sha256"]
    vals = []
    for j in range(entries):
        u, kind = urls[(j * 7919) % rows], kinds[j % len(kinds)]
        vals.append({"url": u, "url_prefix": u.rsplit("/", 1)[0] + "/", "domain": f"nohost{j}.example",
                     "url_md5": hashlib.md5(u.encode()).hexdigest(), "url_sha1": hashlib.sha1(u.encode()).hexdigest(),
                     "url_sha256": hashlib.sha256(u.encode()).hexdigest()}[kind])
    table = pa.table({"kind": [kinds[j % len(kinds)] for j in range(entries)], "value": vals,
                      "source": ["bench"] * entries, "listed_on": [None] * entries}, schema=REMOVAL_SCHEMA)
    (todo, removed), w, c = _timed(lambda: split_removed(pairs, table))
    _, bw, bc = _timed(lambda: Rows.from_pairs(pairs, "00000"))
    print(f"prefilter: {rows} rows x {entries} entries: {removed.num_rows} removed, wall {w:.3f} s cpu {c:.3f} s; "
          f"Rows.from_pairs wall {bw:.3f} s cpu {bc:.3f} s")
    return 1e6 * w / rows, 1e6 * bw / rows


def build_shard(st: LocalStorage, paths: ShardPaths, images: int, kb: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    with st.staging_dir(paths.images_dir, record=paths.downloads) as out:
        w = TarWriter(out, images_per_tar=1000)
        for i in range(images):
            key = f"{i:09d}"
            tar, member = w.write(f"{paths.shard}_{key}", os.urandom(kb * 1024), f"caption {i}", {"key": key})
            rows.append(RowResult(key=key, url=f"http://h.example/{i}.jpg", status="ok", width=256, height=256,
                                  sha256="0" * 64, pdq="0" * 64, pdq_quality=90, tar_path=tar, tar_member=member))
        w.close()
        st.write_parquet(rows_to_table(rows), paths.downloads)
    with st.staging_dir(paths.embeddings_dir, record=paths.scores) as out:
        for name in ("img_emb.npy", "text_emb.npy"):
            e = rng.standard_normal((images, dim)).astype(np.float16)
            np.save(out / name, e)
        n = images
        scores = pa.table({
            "key": [f"{i:09d}" for i in range(n)], "status": ["scored"] * n, "reason": pa.nulls(n, pa.string()),
            "similarity": pa.array(np.full(n, 0.3, np.float32)), "threshold": pa.array(np.full(n, 0.28, np.float32)),
            "language": ["en"] * n, "model_id": ["m"] * n, "weights_id": ["w"] * n,
            "punsafe": pa.array(np.zeros(n, np.float32)), "nsfw": ["UNLIKELY"] * n,
            "embedding_row": pa.array(np.arange(n, dtype=np.int32))}, schema=SCORE_SCHEMA)
        st.write_parquet(scores, paths.scores)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=5_000)
    ap.add_argument("--kb", type=int, default=16)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--removed", type=int, default=10)
    a = ap.parse_args()
    pre_us, setup_us = prefilter(a.rows, a.entries)
    with tempfile.TemporaryDirectory() as tmp:
        st, paths = LocalStorage(Path(tmp) / "root"), ShardPaths("BENCH", "00000")
        build_shard(st, paths, a.images, a.kb, a.dim)
        keys = [f"{(j * a.images) // a.removed:09d}" for j in range(a.removed)]
        removed = pa.table({"crawl": ["BENCH"] * len(keys), "shard": ["00000"] * len(keys), "key": keys,
                            "sample_id": list(range(len(keys))), "reason": ["removal:bench"] * len(keys)})
        dirs = [st.local_dir(paths.images_dir), st.local_dir(paths.embeddings_dir)]

        def rewrite_all() -> None:  # every byte of both dirs read and written, committed the same way
            for i, d in enumerate(dirs):
                with st.staging_dir(f"BENCH/copy{i}/00000") as out:
                    for f in sorted(d.iterdir()):
                        with open(f, "rb") as fin, open(out / f.name, "wb") as fout:
                            shutil.copyfileobj(fin, fout, 1 << 20)

        _, cw, cc = _timed(rewrite_all)
        counts, pw, pc_ = _timed(lambda: purge_removed(st, removed))
        c = counts["BENCH/00000"]
        print(f"purge: {a.images} images x {a.kb} KiB, {a.removed} removed: {c}; wall {pw:.3f} s cpu {pc_:.3f} s; "
              f"rewrite of the shard's dirs wall {cw:.3f} s cpu {cc:.3f} s")
        _, again_w, _ = _timed(lambda: purge_removed(st, removed))
        print(f"second purge (nothing to do): wall {again_w:.3f} s")
    print(f"bench: purge prefilter_us_per_row={pre_us:.2f} setup_us_per_row={setup_us:.2f} purge_s={pw:.3f} "
          f"rewrite_s={cw:.3f} freed_mb={c['bytes_freed'] / 2**20:.2f} ratio={cw / pw:.2f}")


if __name__ == "__main__":
    main()
