"""Downloader processes, PDQ, crawl-unique member keys, config ranges, and load on many loopback hosts.

Real servers only: `HostFarm` (many misbehaving hosts on 127.0.x.y in their own process) and the
tests' `TestServer`. The full load run (100k URLs, 200 hosts) is behind the `load` marker:

    PYTHONPATH=$PWD .venv/bin/python -m pytest -m load -q -s laion_assets_tests/core/download/test_download_scale.py
"""

from __future__ import annotations

import io
import json
import resource
import tarfile
import time
from collections import Counter

import numpy as np
import pdqhash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.download import DownloadConfig, download_shard, list_tar_members
from laion_assets.core.download.checks import CHECKS
from laion_assets.core.download.keys import image_member, member_key
from laion_assets.core.download.resizer import pdq_hash, process_image
from laion_assets.core.download.shard import split_by_host
from laion_assets.core.lib.ids import sample_id
from laion_assets.core.checks import run_checks
from laion_assets.core.lib.validation import ConfigError
from laion_assets.testing.hostfarm import HostFarm
from laion_assets.testing.http_server import TestServer, make_jpeg, static

# ------------------------------------------------------------------------------ PDQ


def _smooth(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    return small.resize((w, h), Image.Resampling.BICUBIC)


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_pdq_hex_is_the_reference_word_order():
    img = _smooth(160, 120, 1)  # shorter side <= PDQ_SIDE: hashed as given
    hex_, quality = pdq_hash(img)
    assert len(hex_) == 64 and hex_ == hex_.lower() and 0 <= quality <= 100
    # The reference prints Hash256 words w[15]..w[0] as %04hx; bit k is bit k % 16 of word k // 16.
    words = [int(hex_[4 * j:4 * j + 4], 16) for j in range(16)][::-1]
    bits = [(words[k >> 4] >> (k & 15)) & 1 for k in range(256)]
    vector, _ = pdqhash.compute(np.asarray(img))
    assert bits == list(vector[::-1])


def test_pdq_survives_resizing_and_tells_images_apart():
    big = _smooth(1600, 1200, 2)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    p = process_image(buf.getvalue(), image_size=256)
    reference, _ = pdqhash.compute(np.asarray(big.resize((512, 384), Image.Resampling.LANCZOS)))
    reference_hex = np.packbits(reference.astype(np.uint8)).tobytes().hex()
    assert _hamming(p.pdq, reference_hex) <= 16  # matching thresholds are ~31 of 256 bits
    other = process_image(make_jpeg(1600, 1200, seed=9), image_size=256)
    assert _hamming(p.pdq, other.pdq) > 64
    assert p.pdq_quality > 0


# ------------------------------------------------------------------------------ config ranges


@pytest.mark.parametrize("setting,value", [
    ("connect_timeout_s", 0.0), ("read_timeout_s", -1.0), ("total_timeout_s", float("nan")),
    ("shard_timeout_s", 0), ("max_redirects", -1), ("retries", -1), ("concurrency", 0),
    ("per_host_concurrency", 0), ("max_bytes", 0), ("min_bytes", -5), ("encode_quality", 101),
    ("image_size", 0), ("processes", -1), ("decode_workers", -2), ("images_per_tar", 0),
    ("backoff_base_s", -0.5), ("max_pixels", 0), ("host_failure_threshold", 0),
    ("resize_mode", "stretch"), ("downscale_filter", "nearest"), ("border_color", (0, 0, 300)),
    ("concurrency", 2.5), ("retries", True),
])
def test_config_rejects_out_of_range_values_naming_the_setting(setting, value):
    with pytest.raises(ConfigError) as err:
        DownloadConfig(**{setting: value})
    assert str(err.value).startswith(f"{setting}=")


def test_config_min_bytes_over_max_bytes():
    with pytest.raises(ConfigError, match="min_bytes=10"):
        DownloadConfig(min_bytes=10, max_bytes=5)


# ------------------------------------------------------------------------------ member keys


def test_member_key_has_no_dot_and_is_prefixed_by_the_shard():
    assert member_key("00001", "000000007") == "00001_000000007"
    assert member_key("part.1", "000000007") == "part-1_000000007"
    assert member_key(None, "000000007") == "000000007"
    assert image_member("000000007", "00001_000000007.jpg") == "00001_000000007.jpg"
    assert image_member("000000007", None) == "000000007.jpg"
    with pytest.raises(ValueError):
        member_key("00001", "a.b")


SMALL = dict(allow_private_hosts=("127.0.0.1",), connect_timeout_s=2.0, read_timeout_s=2.0,
             total_timeout_s=5.0, retries=0, image_size=64, shard_timeout_s=60.0)


def _pairs(urls: list[str]) -> pa.Table:
    n = len(urls)
    return pa.table({"key": [f"{i:09d}" for i in range(n)], "url": urls,
                     "text": [f"caption {i}" for i in range(n)], "page_url": ["http://p/"] * n})


def _members(tar_path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_two_shards_have_disjoint_members_and_json_carries_sample_id(tmp_path):
    routes = {f"/{i}.jpg": static(make_jpeg(320, 240, seed=i)) for i in range(4)}
    with TestServer(routes) as srv:
        pairs = _pairs([srv.url(f"/{i}.jpg") for i in range(4)])
        a = download_shard(pairs, tmp_path / "a", config=DownloadConfig(**SMALL), shard="00000")
        b = download_shard(pairs, tmp_path / "b", config=DownloadConfig(**SMALL), shard="00001")
    ma, mb = _members(a.tar_paths[0]), _members(b.tar_paths[0])
    assert set(ma) & set(mb) == set()
    assert all("." not in name.rsplit(".", 1)[0] for name in ma)
    rows = a.status.to_pylist()
    assert [r["tar_member"] for r in rows] == [f"00000_{i:09d}.jpg" for i in range(4)]
    for r in rows:
        meta = json.loads(ma[r["tar_member"].replace(".jpg", ".json")])
        text = f"caption {int(r['key'])}"
        assert meta["SAMPLE_ID"] == sample_id(r["url"], text) and meta["key"] == r["tar_member"][:-4]
        assert meta["pdq"] == r["pdq"] and len(r["pdq"]) == 64 and 0 <= r["pdq_quality"] <= 100


def test_rerun_moves_legacy_members_to_unique_keys_and_fills_pdq(tmp_path):
    routes = {f"/{i}.jpg": static(make_jpeg(320, 240, seed=i)) for i in range(3)}
    with TestServer(routes) as srv:
        pairs = _pairs([srv.url(f"/{i}.jpg") for i in range(3)])
        first = download_shard(pairs, tmp_path / "v1", config=DownloadConfig(**SMALL))  # no shard: legacy names
        legacy = first.status.drop_columns(["pdq", "pdq_quality"])  # a status from before PDQ
        assert first.status["tar_member"].to_pylist()[0] == "000000000.jpg"
        requests_before = len(srv.log)
        second = download_shard(pairs, tmp_path / "v2", config=DownloadConfig(**SMALL), shard="00042",
                                previous_status=legacy, previous_dir=tmp_path / "v1")
        assert len(srv.log) == requests_before  # everything carried over, nothing fetched
    assert second.stats["carried_over"] == 3
    rows = second.status.to_pylist()
    assert [r["tar_member"] for r in rows] == [f"00042_{i:09d}.jpg" for i in range(3)]
    assert all(r["pdq"] and len(r["pdq"]) == 64 for r in rows)
    assert set(_members(second.tar_paths[0])) == {f"00042_{i:09d}.{e}" for i in range(3)
                                                 for e in ("jpg", "txt", "json")}


# ------------------------------------------------------------------------------ processes and load


def test_split_by_host_keeps_each_host_in_one_group_and_balances():
    urls = [f"http://h{i % 5}.example/{i}.jpg" for i in range(50)] + ["http://big.example/x.jpg"] * 40
    groups = split_by_host(list(range(len(urls))), urls, 3)
    hosts = [{urls[i].split("/")[2] for i in g} for g in groups]
    assert sum(len(g) for g in groups) == 90 and sorted(i for g in groups for i in g) == list(range(90))
    assert all(not (hosts[a] & hosts[b]) for a in range(3) for b in range(a + 1, 3))
    assert max(len(g) for g in groups) == 40  # the big host alone; the five small ones share the rest


FARM_EXPECTED = {  # host kind -> the (status, reason) all of its rows must end with
    "fast": {("ok", None)}, "slow": {("ok", None)}, "redirect": {("ok", None)},
    "rate_limited": {("ok", None)}, "huge": {("skipped", "too_large")},
    "dead": {("failed", "network_error"), ("failed", "host_backoff")},
    "hang": {("failed", "timeout"), ("failed", "host_backoff")},
}


def farm_config(farm: HostFarm, **over) -> DownloadConfig:
    return DownloadConfig(**{
        "allow_private_hosts": farm.allow_list(), "min_bytes": 100, "max_bytes": 1 << 20,
        "image_size": 64, "connect_timeout_s": 2.0, "read_timeout_s": 1.0, "total_timeout_s": 4.0,
        "retries": 1, "backoff_base_s": 0.05, "concurrency": 64, "per_host_concurrency": 4,
        "shard_timeout_s": 300.0, "min_rows_per_process": 1, **over})


def run_load(tmp_path, n_urls: int, n_hosts: int, processes: int, slow_s: float) -> dict:
    with HostFarm(hosts=n_hosts, slow_s=slow_s) as farm:
        urls = farm.urls(n_urls)
        cfg = farm_config(farm, processes=processes)
        t0, c0 = time.monotonic(), time.process_time()
        result = download_shard(_pairs(urls), tmp_path / "out", config=cfg, shard="00007")
        elapsed, cpu = time.monotonic() - t0, time.process_time() - c0
        kinds = [farm.kind_of(u) for u in urls]
        server = farm.stats()
    return dict(result=result, kinds=kinds, urls=urls, cfg=cfg, elapsed=elapsed, parent_cpu=cpu,
                server=server, parent_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def check_load(run: dict, tmp_path) -> None:
    result, cfg = run["result"], run["cfg"]
    status = result.status
    assert status.num_rows == len(run["urls"])  # exactly one row per URL, in input order
    assert status["key"].to_pylist() == [f"{i:09d}" for i in range(len(run["urls"]))]
    assert status["url"].to_pylist() == run["urls"]
    wrong = Counter((k, s, r) for k, s, r in zip(run["kinds"], status["status"].to_pylist(),
                                                status["reason"].to_pylist())
                    if (s, r) not in FARM_EXPECTED[k])
    assert not wrong, wrong
    assert result.stats["watchdog_fired"] == 0 and run["elapsed"] < cfg.shard_timeout_s
    hosts = run["server"]["hosts"]
    assert max(h["max_inflight"] for h in hosts) <= cfg.per_host_concurrency
    pq.write_table(status, tmp_path / "downloads.parquet")
    pq.write_table(_pairs(run["urls"]), tmp_path / "pairs.parquet")
    pq.write_table(list_tar_members(tmp_path / "out"), tmp_path / "tar_members.parquet")
    outcomes = run_checks({v: tmp_path / f"{v}.parquet" for v in ("pairs", "downloads", "tar_members")}, CHECKS)
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def report(run: dict) -> str:
    hosts = run["server"]["hosts"]
    s = run["result"].stats
    return (f"urls={len(run['urls'])} hosts={len(hosts)} processes={s['processes']} "
            f"elapsed_s={run['elapsed']:.1f} parent_cpu_s={run['parent_cpu']:.1f} "
            f"ok={s['status_ok']} requests={s['requests']} retries={s['retries']} "
            f"hosts_backed_off={s['hosts_backed_off']} "
            f"max_inflight_per_host={max(h['max_inflight'] for h in hosts)} "
            f"max_open_conns_per_host={max(h['max_open'] for h in hosts)} "
            f"parent_peak_rss_mb={run['parent_peak_rss_mb']:.0f} "
            f"worker_peak_rss_mb={s.get('peak_rss_mb_worker', 0):.0f} "
            f"server_peak_rss_mb={run['server']['server_peak_rss_mb']:.0f}")


def test_load_small_two_processes_twenty_hosts(tmp_path):
    """~2k URLs over 20 misbehaving hosts in 2 downloader processes: the default run's smoke load."""
    run = run_load(tmp_path, 2000, 20, processes=2, slow_s=0.05)
    check_load(run, tmp_path)
    assert run["result"].stats["processes"] == 2
    print(report(run))


def test_processes_give_the_same_rows_as_one_process(tmp_path):
    with HostFarm(hosts=10, slow_s=0.01) as farm:
        urls = [u for u in farm.urls(300) if farm.kind_of(u) not in ("hang", "dead")]
        one = download_shard(_pairs(urls), tmp_path / "one", config=farm_config(farm, processes=1))
        two = download_shard(_pairs(urls), tmp_path / "two", config=farm_config(farm, processes=2))
    assert (one.stats["processes"], two.stats["processes"]) == (1, 2)
    cols = ["key", "url", "status", "reason", "width", "height", "sha256", "md5", "pdq", "pdq_quality",
            "tar_member", "resized_width", "resized_height"]
    assert one.status.select(cols).to_pylist() == two.status.select(cols).to_pylist()
    m1 = {k: v for t in one.tar_paths for k, v in _members(t).items() if k.endswith(".jpg")}
    m2 = {k: v for t in two.tar_paths for k, v in _members(t).items() if k.endswith(".jpg")}
    assert m1 == m2  # byte-identical images, whichever process decoded them


@pytest.mark.load
def test_load_100k_urls_200_hosts(tmp_path):
    """>= 100k URLs across >= 200 loopback hosts, all cores' downloader processes."""
    run = run_load(tmp_path, 100_000, 200, processes=0, slow_s=0.2)
    print(report(run))
    check_load(run, tmp_path)
    assert run["parent_peak_rss_mb"] < 2048 and run["result"].stats["peak_rss_mb_worker"] < 1024


def test_a_killed_downloader_process_loses_no_row(tmp_path):
    """SIGKILL one downloader process mid-shard: its rows not yet handed over end failed/internal_error,
    every other row is kept, one status row per URL, and the tars hold exactly the ok rows."""
    import multiprocessing as mp
    import os
    import signal
    import threading

    with HostFarm(hosts=2, slow_s=0.05, kinds=("slow",)) as farm:  # one host per process, 60 rows
        urls = farm.urls(120)  # each: >= 60 x 0.05 s one at a time
        box = {}
        runner = threading.Thread(target=lambda: box.update(res=download_shard(
            _pairs(urls), tmp_path / "out", config=farm_config(farm, processes=2, per_host_concurrency=1),
            shard="00003")))
        runner.start()
        deadline = time.monotonic() + 30
        victims = []
        while not victims and time.monotonic() < deadline:
            victims = [p for p in mp.active_children() if p.name == "laion-downloader"]
            time.sleep(0.05)
        time.sleep(1.0)  # let both processes hand over some rows
        os.kill(victims[0].pid, signal.SIGKILL)
        runner.join(60)
    result = box["res"]
    rows = result.status.to_pylist()
    assert [r["url"] for r in rows] == urls
    got = Counter((r["status"], r["reason"]) for r in rows)
    assert set(got) <= {("ok", None), ("failed", "internal_error")}, got
    assert got[("ok", None)] >= 10 and got[("failed", "internal_error")] >= 10, got
    assert all("exited with code -9" in r["error"] for r in rows if r["status"] == "failed")
    members = list_tar_members(tmp_path / "out")["member"].to_pylist()
    assert sorted(m for m in members if m.endswith(".jpg")) == sorted(
        r["tar_member"] for r in rows if r["status"] == "ok")


def test_sixteen_bit_gray_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 300 * 200).reshape(200, 300).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    p = process_image(buf.getvalue(), image_size=64)
    out = np.asarray(Image.open(io.BytesIO(p.jpeg)).convert("L"), dtype=np.float64)
    assert abs(out.mean() - 127.5) < 8 and out.min() < 20 and out.max() > 235  # clipped: mean ~254


ORPHAN_SCRIPT = """
import multiprocessing as mp, sys
import pyarrow as pa
from laion_assets.core.download import DownloadConfig, download_shard

def progress(done, total):
    pids = [p.pid for p in mp.active_children() if p.name == "laion-downloader"]
    print("PIDS", *pids, flush=True)

if __name__ == "__main__":
    urls = sys.argv[2:]
    pairs = pa.table({"key": [f"{i:09d}" for i in range(len(urls))], "url": urls, "text": ["c"] * len(urls)})
    download_shard(pairs, sys.argv[1], progress=progress, config=DownloadConfig(
        allow_private_hosts=("127.0.0.0/16",), min_bytes=100, processes=2, min_rows_per_process=1,
        per_host_concurrency=1, image_size=64, read_timeout_s=60, total_timeout_s=120))
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return False


def test_downloader_processes_exit_when_the_parent_is_killed(tmp_path):
    """SIGKILL the process running download_shard: its downloader processes notice and exit (no
    orphan keeps fetching), also the one whose host never answers (it has nothing to send)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(ORPHAN_SCRIPT)
    with HostFarm(hosts=2, slow_s=0.2, kinds=("slow", "hang")) as farm:
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "out"), *farm.urls(200)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ})
        pids: list[int] = []
        for line in proc.stdout:
            if line.startswith("PIDS") and len(line.split()) == 3:
                pids = [int(p) for p in line.split()[1:]]
                break
        assert pids and all(_running(p) for p in pids)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(p) for p in pids)
