"""A download re-run killed mid-commit keeps every `ok` row: the next run fetches only what failed."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from laion_assets.core.download import DownloadConfig, download_shard
from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.testing.http_server import TestServer, make_jpeg, static

PATHS = ShardPaths("CC-TEST", "00000")
FAST = dict(allow_private_hosts=("127.0.0.1",), connect_timeout_s=2.0, read_timeout_s=1.0,
            total_timeout_s=2.5, retries=0, concurrency=8, shard_timeout_s=30.0, image_size=64)

_RERUN = r"""
import os, signal, sys
import pyarrow.parquet as pq
from laion_assets.core.download import DownloadConfig, download_shard
from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.layout import ShardPaths
root, pairs_file, kill_at = sys.argv[1], sys.argv[2], sys.argv[3]
FAST = %r
def hook(step):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
st, p = LocalStorage(root, on_commit_step=hook), ShardPaths("CC-TEST", "00000")
with st.staging_dir(p.images_dir, record=p.downloads) as out:
    r = download_shard(pq.read_table(pairs_file), out, config=DownloadConfig(**FAST),
                       previous_status=st.read_parquet(p.downloads), previous_dir=st.local_dir(p.images_dir))
    st.write_parquet(r.status, p.downloads)
""" % (FAST,)


def _run(st: LocalStorage, pairs: pa.Table) -> pa.Table:
    previous = st.read_parquet(PATHS.downloads) if st.exists(PATHS.downloads) else None
    previous_dir = st.local_dir(PATHS.images_dir) if previous is not None else None
    with st.staging_dir(PATHS.images_dir, record=PATHS.downloads) as out:
        r = download_shard(pairs, out, config=DownloadConfig(**FAST), previous_status=previous,
                           previous_dir=previous_dir)
        st.write_parquet(r.status, PATHS.downloads)
    return r.status


def test_rerun_after_kills_fetches_only_failed_rows(tmp_path: Path):
    n_ok = 6
    routes = {f"/ok{i}.jpg": static(make_jpeg(400, 300, seed=i)) for i in range(n_ok)}
    with TestServer(routes) as srv:
        urls = [srv.url(f"/ok{i}.jpg") for i in range(n_ok)] + [srv.url("/missing.jpg")]
        pairs = pa.table({
            "key": [f"{i:09d}" for i in range(len(urls))], "url": urls,
            "text": [f"caption {i}" for i in range(len(urls))], "page_url": ["http://example.com/p"] * len(urls),
            "optout_page": [False] * len(urls), "optout_reasons": pa.array([None] * len(urls), pa.string()),
        })
        pairs_file = tmp_path / "pairs.parquet"
        import pyarrow.parquet as pq

        pq.write_table(pairs, pairs_file)
        st = LocalStorage(tmp_path / "root")
        first = _run(st, pairs)
        assert first.column("status").to_pylist().count("ok") == n_ok
        fetched_once = sum(srv.requests_to(f"/ok{i}.jpg") for i in range(n_ok))
        assert fetched_once == n_ok

        for kill_at in ("version_written", "record_written", "staged"):
            proc = subprocess.run([sys.executable, "-c", _RERUN, str(st.root), str(pairs_file), kill_at],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == -9, proc.stderr
            status = st.read_parquet(PATHS.downloads)
            tars = {p.name for p in st.local_dir(PATHS.images_dir).glob("*.tar")}
            ok_tars = {t for t, s in zip(status.column("tar_path").to_pylist(), status.column("status").to_pylist()) if s == "ok"}
            assert ok_tars and ok_tars <= tars, f"killed at {kill_at}: status names tars that are not there"

        again = _run(st, pairs)
        assert again.column("status").to_pylist().count("ok") == n_ok
        assert sum(srv.requests_to(f"/ok{i}.jpg") for i in range(n_ok)) == n_ok, "an ok row was fetched again"
        names = sorted(p.name for p in st.path(PATHS.images_dir).iterdir())
        assert names == [st.live_version(PATHS.images_dir)], names
        assert not [p for p in st.path("CC-TEST/images").iterdir() if p.name.startswith(".")]
