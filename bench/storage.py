"""Cost of the atomic directory commit: a shard's tars written and committed, ours vs the old rename.

Ours: write into a staging dir, content-hash it, rename to `v-<hash>/`, write the record table last,
drop the superseded version (`LocalStorage.staging_dir(..., record=...)`). Baseline: the same writes,
then the previous non-atomic replace (move the old dir aside, rename the new one in, write the
table). Both replace an existing shard of the same size. With `--s3`, also an S3 commit through
moto's server against plain uploads of the same files. Last line:
`bench: storage commit_mb_per_s=<ours> baseline_mb_per_s=<old rename> ratio=<ours / baseline>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from laion_assets.core.storage.local import LocalStorage


def _write_tars(d: Path, tars: int, mb_per_tar: float, seed: int) -> None:
    block = os.urandom(1 << 20)
    for i in range(tars):
        with open(d / f"{i:05d}.tar", "wb") as f:
            for _ in range(int(mb_per_tar)):
                f.write(block)
            f.write(seed.to_bytes(4, "little"))


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def ours(root: Path, tars: int, mb: float, seed: int) -> None:
    st = LocalStorage(root)
    with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
        _write_tars(d, tars, mb, seed)
        st.write_parquet(pa.table({"key": [str(i) for i in range(1000)]}), "c/images/00000.parquet")


def baseline(root: Path, tars: int, mb: float, seed: int) -> None:
    final = root / "c" / "images" / "00000"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".00000.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    _write_tars(tmp, tars, mb, seed)
    if final.exists():
        old = final.parent / f".00000.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    LocalStorage(root).write_parquet(pa.table({"key": [str(i) for i in range(1000)]}), "c/images/00000.parquet")


def s3_figures(tars: int, mb: float, rounds: int) -> None:
    """Commit through moto's S3 server vs plain uploads of the same files and table."""
    from laion_assets.core.storage.s3 import S3Storage
    from laion_assets.testing.s3 import moto_s3

    table = pa.table({"key": [str(i) for i in range(1000)]})
    with moto_s3() as s3, tempfile.TemporaryDirectory() as tmp:
        s3.create_bucket("bench")
        client = s3.client()
        st = S3Storage("s3://bench/ours", client, cache_dir=Path(tmp) / "cache")
        src = Path(tmp) / "src"
        src.mkdir()

        def commit(seed: int) -> None:
            with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
                _write_tars(d, tars, mb, seed)
                st.write_parquet(table, "c/images/00000.parquet")

        def plain(seed: int) -> None:
            _write_tars(src, tars, mb, seed)
            for p in sorted(src.iterdir()):
                client.upload_file(str(p), "bench", f"plain/c/images/00000/{p.name}")
            S3Storage("s3://bench/plain", client).write_parquet(table, "c/images/00000.parquet")

        best = {}
        for name, fn in (("s3_plain", plain), ("s3_ours", commit)):
            fn(0)
            best[name] = min(_timed(lambda r=r: fn(r + 1)) for r in range(rounds))
        total = tars * int(mb)
        for k, (w, c) in best.items():
            print(f"{k}: {total} MB in {w:.3f} s wall, {c:.3f} s CPU ({total / w:.0f} MB/s)")
        print(f"s3 commit vs plain uploads: ratio={best['s3_plain'][0] / best['s3_ours'][0]:.2f} (speed, ours / plain)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tars", type=int, default=8)
    ap.add_argument("--mb-per-tar", type=float, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="also commit through moto's S3 server")
    args = ap.parse_args()
    if args.s3:
        s3_figures(args.tars, args.mb_per_tar, args.rounds)
    total_mb = args.tars * int(args.mb_per_tar)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("baseline", baseline), ("ours", ours), ("baseline", baseline), ("ours", ours)):
            root = Path(tmp) / name
            fn(root, args.tars, args.mb_per_tar, 0)  # an existing shard to replace
            walls, cpus = [], []
            for r in range(args.rounds):
                w, c = _timed(lambda: fn(root, args.tars, args.mb_per_tar, r + 1))
                walls.append(w)
                cpus.append(c)
            results.setdefault(name, []).append((min(walls), min(cpus)))
    best = {k: min(v) for k, v in results.items()}
    for k, (w, c) in best.items():
        print(f"{k}: {total_mb} MB in {w:.3f} s wall, {c:.3f} s CPU ({total_mb / w:.0f} MB/s)")
    extra_cpu_ms_per_mb = 1000 * (best["ours"][1] - best["baseline"][1]) / total_mb
    print(f"commit overhead: {extra_cpu_ms_per_mb:.2f} ms CPU per MB committed (the content hash)")
    ours_rate, base_rate = total_mb / best["ours"][0], total_mb / best["baseline"][0]
    print(f"bench: storage commit_mb_per_s={ours_rate:.0f} baseline_mb_per_s={base_rate:.0f} "
          f"ratio={ours_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
