"""Bench: download + resize N realistic JPEGs from a local HTTP server with per-request latency.

    python bench/download.py [--n 600] [--latency-ms 30] [--concurrency 64] [--processes 0]

- CPU per image, one thread, no network: `process_image` (magic bytes, header pixel check, JPEG
  draft decode, area resize, encode q95, PDQ, sha256 + md5 + sha1) next to a plain decode+resize+encode
  loop (Pillow: full decode, area resize, encode q95, sha256) and img2dataset's own steps with cv2
  (full decode, INTER_AREA, cv2 encode q95, sha256; opencv-python-headless is a dev extra;
  img2dataset itself is not installed). Beside it, the share of `process_image` spent hashing the
  original bytes (sha1 alone, and sha256 + md5 + sha1), measured over the same bytes.
- download: `download_shard` against a local HTTP/1.1 server (separate process, keep-alive,
  `--latency-ms` before each response): robots.txt + tdmrep.json, SSRF guard, GET, decode in the
  downloader processes, tars written by the parent; run with 1 process and with all
  (`available_cpus()`) processes: the scaling figure. CPU per image counts the parent and its
  downloader processes (reaped children), not the test server.
- baseline (the ratio's denominator): `process_image` over the same bytes in a pool of as many
  processes, no network, no tar; run before and after the downloads, the two rates averaged.
Last line: `bench: download images_per_s=... baseline_images_per_s=... processes=... scaling=...
cpu_ms_per_image=... plain_loop_cpu_ms_per_image=... ratio=...`.

Modes (`bench/download_modes.py`): `--mix one,skewed,many` (1 core vs every core on the host farm,
by host mix; last line `bench: download mode=mix ... ratio=<smallest scaling>`) and `--short
[--old TREE]` (short shards in a fresh interpreter, this tree vs an older checkout; `ratio=<after
/ before, first shard, 1 process>`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--tree" in sys.argv:  # --short's child: import that checkout's laion_assets
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])
else:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
from PIL import Image

from laion_assets.core.download import DownloadConfig, download_shard
from laion_assets.core.download.resizer import process_image, target_size
from laion_assets.core.lib.cpus import available_cpus
from laion_assets.testing.http_server import TestServer, make_jpeg, static

SIZES = [(320, 240), (500, 375), (640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200),
         (2048, 1536), (600, 900), (1200, 1600)]


def make_pool(n_distinct: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [make_jpeg(*rng.choice(SIZES), seed=i, quality=rng.choice([75, 85, 92])) for i in range(n_distinct)]


def serve_threaded(images: list[bytes], n: int, latency_s: float, port_q, stop) -> None:
    """The tests' TestServer (http.server, a thread per connection, ~0.7-1 ms CPU per request)."""
    routes = {f"/img/{i}.jpg": static(images[i % len(images)]) for i in range(n)}
    with TestServer(routes, latency_s=latency_s) as srv:
        c0 = cpu_s()
        port_q.put(srv.port)
        stop.wait()
    port_q.put(cpu_s() - c0)


def serve(images: list[bytes], n: int, latency_s: float, port_q, stop) -> None:
    """Lean HTTP/1.1 server (asyncio, keep-alive, Content-Length, pre-built responses): every
    response is sent `latency_s` after its request arrived. It shares the bench's 2 cores with the
    client, so its CPU per request is kept small (a remote server costs the client nothing)."""
    import asyncio

    def response(body: bytes, ctype: bytes, status: bytes = b"200 OK") -> bytes:
        return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    blobs = [response(img, b"image/jpeg") for img in images]
    routes = {f"/img/{i}.jpg".encode(): blobs[i % len(blobs)] for i in range(n)}
    not_found = response(b"not found", b"text/plain", b"404 Not Found")

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.t, self.buf = transport, b""

        def data_received(self, data):
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].split(b"?", 1)[0]
                loop.call_later(latency_s, self.send, routes.get(path, not_found))

        def send(self, data):
            if not self.t.is_closing():
                self.t.write(data)

    async def main():
        server = await loop.create_server(Conn, "127.0.0.1", 0, backlog=1024)
        c0 = cpu_s()
        port_q.put(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        server.close()
        port_q.put(cpu_s() - c0)  # serving only, not the process start

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())


def cpu_s(children: bool = False) -> float:
    """CPU seconds of this process (and of its reaped children: the downloader processes)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    total = r.ru_utime + r.ru_stime
    if children:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += c.ru_utime + c.ru_stime
    return total


def ours(size: int, body: bytes):
    """What a downloader's decode thread runs, minus the tar append."""
    return process_image(body, image_size=size)


def plain_loop(size: int, body: bytes) -> bytes:
    """The straightforward way (img2dataset's steps with Pillow): full decode, area resize, encode."""
    img = Image.open(io.BytesIO(body)).convert("RGB")
    tw, th = target_size(*img.size, size, "keep_ratio", False)
    img = img.resize((tw, th), Image.Resampling.BOX)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    hashlib.sha256(body).hexdigest()
    return out.getvalue()


def img2dataset_loop(size: int, body: bytes) -> bytes:
    """img2dataset's resizer steps (resizer.py, keep_ratio): cv2 full decode, INTER_AREA downscale
    so the smaller side is `size`, cv2 JPEG encode q95, sha256 of the original."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)  # img2dataset does the same
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    h, w = img.shape[:2]
    tw, th = target_size(w, h, size, "keep_ratio", False)
    img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA if tw * th < w * h else cv2.INTER_LANCZOS4)
    ok, out = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 95])
    hashlib.sha256(body).hexdigest()
    return out.tobytes()


def hash_original(body: bytes, names: tuple[str, ...]) -> None:
    for name in names:
        hashlib.new(name, body).hexdigest()


def cpu_ms_per_image(bodies: list[bytes], fn) -> float:
    fn(bodies[0])
    c0 = time.process_time()
    for b in bodies:
        fn(b)
    return 1e3 * (time.process_time() - c0) / len(bodies)


def pool_rate(bodies: list[bytes], size: int, processes: int) -> float:
    """images/s of process_image over the bodies in a pool of processes (started before timing)."""
    with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(partial(ours, size), bodies[:processes]))
        t0 = time.perf_counter()
        list(pool.map(partial(ours, size), bodies, chunksize=8))
        return len(bodies) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--distinct", type=int, default=60)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--processes", type=int, default=0, help="downloader processes; 0 = available_cpus()")
    ap.add_argument("--cpu-n", type=int, default=120, help="images for the one-thread CPU figures")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--server", choices=["lean", "threaded"], default="lean",
                    help="lean: asyncio server (~0.15 ms CPU/request); threaded: the tests' TestServer")
    ap.add_argument("--mix", default="", help="one,skewed,many: 1 core vs all cores by host mix")
    ap.add_argument("--short", action="store_true", help="short shards in a fresh interpreter")
    ap.add_argument("--old", default="", help="--short: an older checkout to compare with")
    ap.add_argument("--shards", type=int, default=3, help="--short: shards per interpreter")
    ap.add_argument("--short-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default="", help=argparse.SUPPRESS)
    ap.add_argument("--urls-file", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    import download_modes

    if args.short_child:
        return download_modes.short_child(args.tree, args.urls_file, args.shards, args.processes,
                                          args.image_size)
    if args.mix or args.short:
        images = make_pool(args.distinct)
        print(f"load {download_modes.loadavg()}; {available_cpus()} usable cores", flush=True)
        if args.mix:
            download_modes.mix_main(args, images)
        if args.short:
            download_modes.short_main(args, images)
        return

    images = make_pool(args.distinct)
    sizes = [len(images[i % len(images)]) for i in range(args.n)]
    print(f"corpus: {args.n} urls over {len(images)} distinct JPEGs, mean {sum(sizes) / len(sizes) / 1e3:.0f} kB, "
          f"max {max(sizes) / 1e3:.0f} kB, latency {args.latency_ms:.0f} ms/request")

    cores = available_cpus()
    procs_all = args.processes or cores
    base_cfg = dict(allow_private_hosts=("127.0.0.1",), concurrency=args.concurrency,
                    per_host_concurrency=args.concurrency, image_size=args.image_size,
                    min_rows_per_process=1)
    cfg = DownloadConfig(**base_cfg)
    bodies = [images[i % len(images)] for i in range(args.n)]

    # --- CPU per image, one thread, no network: ours vs a plain loop ------------------------------
    ours_cpu = cpu_ms_per_image(bodies[: args.cpu_n], partial(ours, cfg.image_size))
    plain_cpu = cpu_ms_per_image(bodies[: args.cpu_n], partial(plain_loop, cfg.image_size))
    try:
        cv2_cpu = cpu_ms_per_image(bodies[: args.cpu_n], partial(img2dataset_loop, cfg.image_size))
    except ImportError:  # opencv-python-headless is a dev extra
        cv2_cpu = float("nan")
    print(f"CPU per image, one thread, {args.cpu_n} images: process_image (draft decode, area resize, "
          f"encode q95, PDQ, sha256+md5+sha1) {ours_cpu:.2f} ms; plain loop (Pillow full decode, area "
          f"resize, encode q95, sha256) {plain_cpu:.2f} ms; img2dataset's cv2 steps (full decode, "
          f"INTER_AREA, encode q95, sha256) {cv2_cpu:.2f} ms")

    sha1_cpu = cpu_ms_per_image(bodies[: args.cpu_n], partial(hash_original, names=("sha1",)))
    hashes_cpu = cpu_ms_per_image(bodies[: args.cpu_n], partial(hash_original, names=("sha256", "md5", "sha1")))
    print(f"hashing the original bytes, one thread: sha1 {sha1_cpu:.3f} ms/image "
          f"({100 * sha1_cpu / ours_cpu:.1f}% of process_image), sha256+md5+sha1 {hashes_cpu:.3f} ms/image "
          f"({100 * hashes_cpu / ours_cpu:.1f}%)")

    base1 = pool_rate(bodies, cfg.image_size, procs_all)
    ctx = mp.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=serve if args.server == "lean" else serve_threaded,
                       args=(images, args.n, args.latency_ms / 1e3, port_q, stop), daemon=True)
    proc.start()
    runs = {}
    try:
        port = port_q.get(timeout=60)
        pairs = pa.table({
            "key": [f"{i:09d}" for i in range(args.n)],
            "url": [f"http://127.0.0.1:{port}/img/{i}.jpg" for i in range(args.n)],
            "text": [f"caption {i}" for i in range(args.n)],
        })
        for n_proc in sorted({1, procs_all}):
            run_cfg = DownloadConfig(**base_cfg, processes=n_proc)
            with tempfile.TemporaryDirectory() as tmp:
                c0, p0, t0 = cpu_s(children=True), cpu_s(), time.perf_counter()
                res = download_shard(pairs, Path(tmp) / "out", config=run_cfg, shard="00000")
                wall, cpu = time.perf_counter() - t0, cpu_s(children=True) - c0
                parent_cpu = cpu_s() - p0
            ok = res.stats["status_ok"]
            startup = res.stats.get("worker_startup_cpu_s", 0.0)
            if "decoder_cpu_s" in res.stats:  # forked by the fork server: not our reaped children
                cpu = parent_cpu + startup + res.stats.get("worker_cpu_s", 0.0) + res.stats["decoder_cpu_s"]
            steady = 1e3 * (cpu - startup) / max(ok, 1)
            runs[n_proc] = (ok / wall, steady, 1e3 * parent_cpu / max(ok, 1))
            print(f"download, {n_proc} process(es) (x{run_cfg.decode_threads(n_proc)} decode threads): "
                  f"{ok}/{args.n} ok in {wall:.2f} s, {ok / wall:.1f} images/s, "
                  f"{1e3 * cpu / max(ok, 1):.2f} ms CPU/image (client, workers included), "
                  f"{steady:.2f} ms without the workers' start-up ({startup:.2f} s CPU: interpreter + imports)")
    finally:
        stop.set()
        server_cpu = port_q.get(timeout=10)
        proc.join(5)
    base2 = pool_rate(bodies, cfg.image_size, procs_all)
    baseline = (base1 + base2) / 2
    print(f"baseline (process_image in a pool of {procs_all} processes, no network): "
          f"{base1:.1f} before / {base2:.1f} after -> {baseline:.1f} images/s")
    print(f"test server: {1e3 * server_cpu / args.n / len(runs):.2f} ms CPU/request (while serving)")
    rate_all, cpu_all, parent_ms = runs[procs_all]
    scaling = rate_all / runs[1][0]
    print(f"scaling: {procs_all} processes / 1 process = {scaling:.2f}x on {cores} available cores "
          f"(wall clock; only meaningful when the cores are otherwise idle)")
    if procs_all > 1:
        print(f"parent (tars + status) CPU per image with {procs_all} processes: {parent_ms:.2f} ms of "
              f"{cpu_all:.2f} ms -> the parent can feed ~{cpu_all / parent_ms:.0f} cores' worth of "
              f"downloader processes before it saturates (the scaling ceiling, independent of load)")
    print(f"CPU per downloaded image {cpu_all:.2f} ms (network, decode, PDQ, tar, status) vs "
          f"plain decode+resize+encode loop {plain_cpu:.2f} ms: {cpu_all / plain_cpu:.2f}; "
          f"vs img2dataset's cv2 steps {cv2_cpu:.2f} ms (no network): {cpu_all / cv2_cpu:.2f}")
    print(f"bench: download images_per_s={rate_all:.1f} baseline_images_per_s={baseline:.1f} "
          f"processes={procs_all} scaling={scaling:.2f} cpu_ms_per_image={cpu_all:.2f} "
          f"plain_loop_cpu_ms_per_image={plain_cpu:.2f} cv2_loop_cpu_ms_per_image={cv2_cpu:.2f} ratio={rate_all / baseline:.2f}")


if __name__ == "__main__":
    main()
