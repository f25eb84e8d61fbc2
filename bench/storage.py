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

from laion_assets.core.storage import LocalStorage


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tars", type=int, default=8)
    ap.add_argument("--mb-per-tar", type=float, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
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
