"""Bench: download + resize N realistic JPEGs from a local HTTP server with per-request latency.

    python bench/download.py [--n 600] [--latency-ms 30] [--concurrency 64] [--workers 0]

What each side does (same 600 bodies, same image settings, same number of threads):
- download: `download_shard` against a local HTTP/1.1 server (separate process, keep-alive,
  `--latency-ms` before each response): robots.txt + tdmrep.json, SSRF guard, HTTP GET, then in
  `decode_workers` threads `process_image` (magic bytes, header pixel check, JPEG draft decode,
  Lanczos resize, JPEG encode, sha256 + md5 of the original) and the tar append; status table.
- baseline (the ratio's denominator): `process_image` over the same bytes in a thread pool of the
  same size, no network, no tar. It is run before and after the download and the two rates are
  averaged, so a change in the machine's other load during the run biases neither side.
- also printed: a bare decode (draft) + resize loop, no encode, no hashes, same threads, and the
  CPU-bound ratio (baseline CPU per image / download CPU per image, client + server): the ratio the
  wall clock tends to when the cores are saturated, independent of other load on the machine.
Last line: `bench: download images_per_s=... baseline_images_per_s=... ratio=...`.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from laion_assets.core.download import DownloadConfig, download_shard  # noqa: E402
from laion_assets.core.download.resizer import process_image, target_size  # noqa: E402
from laion_assets.core.download.testing import TestServer, make_jpeg, static  # noqa: E402

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


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--distinct", type=int, default=60)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--server", choices=["lean", "threaded"], default="lean",
                    help="lean: asyncio server (~0.15 ms CPU/request); threaded: the tests' TestServer")
    args = ap.parse_args()

    images = make_pool(args.distinct)
    sizes = [len(images[i % len(images)]) for i in range(args.n)]
    print(f"corpus: {args.n} urls over {len(images)} distinct JPEGs, mean {sum(sizes) / len(sizes) / 1e3:.0f} kB, "
          f"max {max(sizes) / 1e3:.0f} kB, latency {args.latency_ms:.0f} ms/request")

    cfg = DownloadConfig(allow_private_hosts=("127.0.0.1",), concurrency=args.concurrency,
                         per_host_concurrency=args.concurrency, decode_workers=args.workers,
                         image_size=args.image_size)

    bodies = [images[i % len(images)] for i in range(args.n)]

    def timed(fn) -> tuple[float, float]:
        """images/s and CPU ms/image of `fn` over the bodies in cfg.workers threads."""
        c0, t0 = cpu_s(), time.perf_counter()
        with ThreadPoolExecutor(cfg.workers) as pool:
            list(pool.map(fn, bodies))
        return args.n / (time.perf_counter() - t0), 1e3 * (cpu_s() - c0) / args.n

    def full(b: bytes):  # exactly what a download's decode thread runs, minus the tar append
        return process_image(b, image_size=cfg.image_size, resize_mode=cfg.resize_mode,
                             max_pixels=cfg.max_pixels, encode_quality=cfg.encode_quality,
                             resize_only_if_bigger=cfg.resize_only_if_bigger,
                             border_color=cfg.border_color)

    def decode_resize(b: bytes):
        img = Image.open(io.BytesIO(b))
        tw, th = target_size(*img.size, cfg.image_size, cfg.resize_mode, cfg.resize_only_if_bigger)
        img.draft("RGB", (tw, th))
        return img.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)

    base1, base1_cpu = timed(full)

    ctx = mp.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=serve if args.server == "lean" else serve_threaded, args=(images, args.n, args.latency_ms / 1e3, port_q, stop), daemon=True)
    proc.start()
    try:
        port = port_q.get(timeout=60)
        pairs = pa.table({
            "key": [f"{i:09d}" for i in range(args.n)],
            "url": [f"http://127.0.0.1:{port}/img/{i}.jpg" for i in range(args.n)],
            "text": [f"caption {i}" for i in range(args.n)],
            "page_url": ["http://example.com/"] * args.n,
            "optout_page": [False] * args.n,
            "optout_reasons": [None] * args.n,
        })
        with tempfile.TemporaryDirectory() as tmp:
            c0, t0 = cpu_s(), time.perf_counter()
            res = download_shard(pairs, Path(tmp) / "out", config=cfg)
            dl_s, dl_cpu = time.perf_counter() - t0, cpu_s() - c0
    finally:
        stop.set()
        server_cpu = port_q.get(timeout=10)
        proc.join(5)
    base2, base2_cpu = timed(full)
    bare, bare_cpu = timed(decode_resize)
    baseline, base_cpu = (base1 + base2) / 2, (base1_cpu + base2_cpu) / 2
    print(f"baseline (process_image: decode+resize+encode+sha256+md5, {cfg.workers} threads): "
          f"{base1:.1f} before / {base2:.1f} after -> {baseline:.1f} images/s, {base_cpu:.2f} ms CPU/image")
    print(f"bare decode+resize (no encode, no hashes, {cfg.workers} threads): {bare:.1f} images/s, "
          f"{bare_cpu:.2f} ms CPU/image")
    ok = res.stats["status_ok"]
    achieved = ok / dl_s
    print(f"download: {ok}/{args.n} ok in {dl_s:.2f} s, {achieved:.1f} images/s, "
          f"{1e3 * dl_cpu / max(ok, 1):.2f} ms CPU/image (client process) + "
          f"{1e3 * server_cpu / max(ok, 1):.2f} ms (test server process, while serving), "
          f"{res.stats['bytes'] / dl_s / 1e6:.1f} MB/s, requests={res.stats['requests']}")
    cpu_ratio = base_cpu / (1e3 * (dl_cpu + server_cpu) / max(ok, 1))
    print(f"ratios: vs process_image {achieved / baseline:.2f}, vs bare decode+resize {achieved / bare:.2f}, "
          f"CPU-bound (baseline CPU / client+server CPU per image) {cpu_ratio:.2f}")
    print(f"bench: download images_per_s={achieved:.1f} baseline_images_per_s={baseline:.1f} "
          f"ratio={achieved / baseline:.2f}")


if __name__ == "__main__":
    main()
