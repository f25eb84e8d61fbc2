"""Modes of bench/download.py: core scaling by host mix, and short shards (cold start-up).

--mix one,skewed,many   download images/s with a 1-core budget (processes=1, decode_workers=1)
                        and with every usable core (processes=decode_workers=available_cpus()),
                        on the loopback host farm (`laion_assets.testing.hostfarm`, kind "slow":
                        each response `--latency-ms` after its request, the bench's JPEGs):
                        one = every URL on one host; skewed = one host has 60 % of the URLs, 20
                        hosts share the rest; many = 100 hosts round-robin. Each budget first runs
                        a 32-row warm-up shard (the pool and fork server start outside the figure).
--short [--old TREE]    K shards of --n rows in a fresh interpreter each, for this tree and for an
                        older checkout (`git worktree add /tmp/old <commit>`): the first shard
                        pays every start-up (fork server, decoder pool, downloader processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOSTS = {"one": 1, "skewed": 21, "many": 100}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def self_cpu_s() -> float:
    return time.process_time()


def mix_urls(farm, mix: str, n: int) -> list[str]:
    def url(k: int, i: int) -> str:
        addr, port, _ = farm.hosts[k]
        return f"http://{addr}:{port}/img/{i}.jpg"

    if mix == "one":
        return [url(0, i) for i in range(n)]
    if mix == "skewed":  # 3 in 5 to host 0, the rest round-robin over hosts 1..20
        return [url(0, i) if i % 5 < 3 else url(1 + i % 20, i) for i in range(n)]
    return [url(i % len(farm.hosts), i) for i in range(n)]


def pairs_of(urls: list[str]):
    import pyarrow as pa

    return pa.table({"key": [f"{i:09d}" for i in range(len(urls))], "url": urls,
                     "text": [f"caption {i}" for i in range(len(urls))]})


def timed_shard(pairs, cfg) -> dict:
    """One download_shard: wall, images/s, CPU of this process + downloaders + decoders."""
    from laion_assets.core.download import download_shard

    with tempfile.TemporaryDirectory() as tmp:
        c0, t0 = self_cpu_s(), time.perf_counter()
        res = download_shard(pairs, Path(tmp) / "out", config=cfg, shard="00000")
        wall = time.perf_counter() - t0
        own = self_cpu_s() - c0
    s = res.stats
    cpu = own + s.get("worker_cpu_s", 0) + s.get("worker_startup_cpu_s", 0) + s.get("decoder_cpu_s", 0)
    ok = s["status_ok"]
    return {"ok": ok, "rows": pairs.num_rows, "wall_s": wall, "images_per_s": ok / wall,
            "cpu_ms_per_image": 1e3 * cpu / max(ok, 1), "processes": s["processes"]}


def run_mixes(mixes: list[str], images: list[bytes], n: int, latency_s: float, image_size: int,
              concurrency: int) -> list[dict]:
    from laion_assets.core.download import DownloadConfig
    from laion_assets.core.lib.cpus import available_cpus
    from laion_assets.testing.hostfarm import HostFarm

    cores = available_cpus()
    out = []
    for mix in mixes:
        with HostFarm(hosts=HOSTS[mix], slow_s=latency_s, kinds=("slow",), images=images) as farm:
            urls = mix_urls(farm, mix, n)
            runs = {}
            for budget in sorted({1, cores}):
                cfg = DownloadConfig(allow_private_hosts=farm.allow_list(), concurrency=concurrency,
                                     per_host_concurrency=concurrency, image_size=image_size,
                                     min_rows_per_process=1, processes=budget, decode_workers=budget)
                timed_shard(pairs_of(urls[:32]), cfg)  # warm-up: pool + fork server started
                load0 = loadavg()
                runs[budget] = timed_shard(pairs_of(urls), cfg)
                runs[budget]["load"] = f"{load0} -> {loadavg()}"
        one, full = runs[1], runs[cores]
        row = {"mix": mix, "hosts": HOSTS[mix], "cores": cores, "one_core": one, "all_cores": full,
               "scaling": full["images_per_s"] / one["images_per_s"]}
        out.append(row)
        for budget, r in sorted(runs.items()):
            print(f"mix {mix} ({HOSTS[mix]} host(s)), {budget} core(s) budget: {r['ok']}/{r['rows']} ok in "
                  f"{r['wall_s']:.2f} s, {r['images_per_s']:.1f} images/s, {r['cpu_ms_per_image']:.2f} ms "
                  f"CPU/image (this process + downloaders + decoders), {r['processes']} downloader "
                  f"process(es), load {r['load']}", flush=True)
        print(f"mix {mix}: scaling {cores} cores / 1 core = {row['scaling']:.2f}x", flush=True)
    return out


def mix_main(args, images: list[bytes]) -> None:
    mixes = [m.strip() for m in args.mix.split(",") if m.strip()]
    bad = [m for m in mixes if m not in HOSTS]
    if bad:
        raise SystemExit(f"--mix {bad}: choose from {sorted(HOSTS)}")
    rows = run_mixes(mixes, images, args.n, args.latency_ms / 1e3, args.image_size, args.concurrency)
    figures = " ".join(f"{r['mix']}_scaling={r['scaling']:.2f}" for r in rows)
    rates = " ".join(f"{r['mix']}_images_per_s={r['all_cores']['images_per_s']:.1f}" for r in rows)
    print(f"bench: download mode=mix cores={rows[0]['cores']} {rates} {figures} "
          f"ratio={min(r['scaling'] for r in rows):.2f}")


# ------------------------------------------------------------------------------ short shards
def short_child(tree: str, urls_file: str, shards: int, processes: int, image_size: int) -> None:
    """In a fresh interpreter whose sys.path starts with `tree`: K shards, one JSON line."""
    from laion_assets.core.download import DownloadConfig

    urls = json.loads(Path(urls_file).read_text())
    cfg = DownloadConfig(allow_private_hosts=("127.0.0.0/16",), concurrency=64, per_host_concurrency=64,
                         image_size=image_size, min_rows_per_process=1, processes=processes)
    runs = [timed_shard(pairs_of(urls), cfg) for _ in range(shards)]
    print("SHORT " + json.dumps(runs), flush=True)


def short_main(args, images: list[bytes]) -> None:
    from laion_assets.core.lib.cpus import available_cpus
    from laion_assets.testing.hostfarm import HostFarm

    here = str(Path(__file__).resolve().parents[1])
    trees = ([("before", str(Path(args.old).resolve()))] if args.old else []) + [("after", here)]
    procs = sorted({1, args.processes or available_cpus()})
    results: dict = {}
    with HostFarm(hosts=1, slow_s=args.latency_ms / 1e3, kinds=("slow",), images=images) as farm:
        urls = mix_urls(farm, "one", args.n)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(urls, f)
        try:
            for n_proc in procs:
                for label, tree in trees:
                    load0 = loadavg()
                    cmd = [sys.executable, str(Path(__file__).resolve().parent / "download.py"),
                           "--short-child", "--tree", tree, "--urls-file", f.name, "--shards",
                           str(args.shards), "--processes", str(n_proc), "--image-size", str(args.image_size)]
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False,
                                         env={**os.environ, "PYTHONPATH": tree})
                    line = [ln for ln in out.stdout.splitlines() if ln.startswith("SHORT ")]
                    if not line:
                        raise SystemExit(f"short child failed ({label}):\n{out.stdout}\n{out.stderr[-3000:]}")
                    runs = json.loads(line[-1][6:])
                    results[(label, n_proc)] = runs
                    rates = ", ".join(f"{r['images_per_s']:.1f}" for r in runs)
                    print(f"short shards, {label}, {n_proc} process(es): {args.shards} x {args.n} rows, "
                          f"images/s per shard {rates} (the first pays the start-up), load {load0} -> "
                          f"{loadavg()}", flush=True)
        finally:
            os.unlink(f.name)
    first = {k: v[0]["images_per_s"] for k, v in results.items()}
    figures = " ".join(f"{label}_{n}proc_first_images_per_s={first[(label, n)]:.1f}" for label, n in results)
    ratio = (first[("after", 1)] / first[("before", 1)]) if args.old else float("nan")
    print(f"bench: download mode=short rows={args.n} {figures} ratio={ratio:.2f}")
