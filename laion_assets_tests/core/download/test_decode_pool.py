"""The shard's decoder pool (issue 22) and the watchdog that needs no GIL (issue 19).

Real processes, a real loopback HTTP server; nothing of ours is replaced."""

import os
import tempfile
import time

import pyarrow as pa

from laion_assets.core.download import DownloadConfig, decodepool, download_shard
from laion_assets.testing.http_server import TestServer, make_jpeg, static

from .test_download_hostile import FAST


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pairs(urls):
    return pa.table({"key": [f"{i:05d}" for i in range(len(urls))], "url": urls, "text": ["c"] * len(urls)})


def test_one_host_uses_every_decoder_and_the_pool_is_kept_for_the_next_shard():
    """One host is one downloader process; its images are decoded by both pool decoders, and the
    second shard starts no decoder (the first shard's pool is reused)."""
    body = make_jpeg(1600, 1200, seed=1)
    with TestServer({"/a.jpg": static(body, "image/jpeg")}) as srv:
        urls = [srv.url("/a.jpg") + f"?{i}" for i in range(40)]
        cfg = DownloadConfig(**{**FAST, "decode_workers": 2, "processes": 1, "min_bytes": 100})
        first = download_shard(_pairs(urls), tempfile.mkdtemp(), config=cfg)
        pids = decodepool._shared.pids()
        cpu = {p: _cpu_s(p) for p in pids}
        second = download_shard(_pairs(urls), tempfile.mkdtemp(), config=cfg)
        used = {p: _cpu_s(p) - cpu[p] for p in pids}
    assert first.stats["status_ok"] == second.stats["status_ok"] == 40
    assert second.stats["processes"] == 1 and second.stats["decoders"] == 2
    assert second.stats["decoder_starts"] == 0 and decodepool._shared.pids() == pids
    assert len(pids) == 2 and all(v > 0.02 for v in used.values()), used  # both decoded this host


def test_one_downloader_whose_loop_is_held_still_ends_at_the_shard_timeout():
    """A host's robots.txt of 7 million junk lines (28 MB, under a raised robots_max_bytes) keeps the
    one downloader's event loop busy in pure Python for seconds: the loop's own watchdog cannot run,
    so the parent kills that process at the hard deadline (1 s + 3 x 0.25 s grace). Before, one
    process ran its loop in a thread of the caller and the shard ended only when the parse did."""
    robots = b"User-agent: *\n" + b"u:v\n" * 7_000_000
    routes = {"/robots.txt": static(robots, "text/plain"),
              "/a.jpg": static(make_jpeg(300, 200, seed=2), "image/jpeg")}
    with TestServer(routes) as srv:
        urls = [srv.url("/a.jpg") + f"?{i}" for i in range(5)]
        cfg = DownloadConfig(**{**FAST, "processes": 1, "robots_max_bytes": 64 << 20,
                                "shard_timeout_s": 1.0, "min_bytes": 100})
        started = time.monotonic()
        result = download_shard(_pairs(urls), tempfile.mkdtemp(), config=cfg)
        elapsed = time.monotonic() - started
    rows = result.status.to_pylist()
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", "shard_timeout")] * 5
    assert result.stats["watchdog_fired"] == 1
    assert elapsed < 6.0, elapsed  # 2.5 s at load 14; before: 15.4 s (docs/reliability.md)
