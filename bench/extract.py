"""Benchmark: full extractor vs a bare warcio + lxml loop that only counts <img alt>, same files, same run.

Builds (or takes, --warc) per-record-gzip WARCs of real pages: every HTML response of
../shared/data/real-warc replicated under distinct URLs. Prints pages/s and HTML MB/s for
  baseline  warcio ArchiveIterator + lxml.html.fromstring + count img[@alt], 1 process
  full      extract_shard (every rule, language, provenance), 1 and 2 processes over the same files
Last line: bench: extract pages_per_s=<full> baseline_pages_per_s=<bare> ratio=<full/bare> (wall, best of
--rounds interleaved runs) ... cpu_ratio=<same on CPU seconds> (the figure to trust on a shared machine)

    python bench/extract.py [--pages 3000] [--files 2] [--warc A.warc.gz ...]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = Path(os.environ.get("LAION_REAL_WARC_DIR") or ROOT / ".." / "shared" / "data" / "real-warc")


def real_pages() -> list[tuple[bytes, bytes]]:
    """(HTTP header block, decoded HTML body) of every HTML response in the real WARCs."""
    from warcio.archiveiterator import ArchiveIterator

    out = []
    for p in sorted(REAL.glob("*.warc.gz")):
        with open(p, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response" or not rec.http_headers:
                    continue
                ct = rec.http_headers.get_header("Content-Type") or ""
                if "html" not in ct:
                    continue
                out.append((f"HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n\r\n".encode("latin-1"), rec.content_stream().read()))
    return out


def build_warcs(n_pages: int, n_files: int, outdir: Path, distinct_captions: bool = True) -> list[str]:
    """Copies of the real pages; each copy's alt texts get a copy number so, as on a real crawl,
    captions do not repeat (the caption-rule and language caches then hit as rarely as they would)."""
    pages = real_pages()
    if not pages:
        raise SystemExit(f"no HTML pages under {REAL} (set LAION_REAL_WARC_DIR to the real-warc folder)")
    paths = [outdir / f"bench-{i}.warc.gz" for i in range(n_files)]
    fhs = [open(p, "wb") for p in paths]
    for i in range(n_pages):
        head, body = pages[i % len(pages)]
        if distinct_captions:
            body = body.replace(b'alt="', b'alt="%d ' % i).replace(b"alt='", b"alt='%d " % i)
        block = head + body
        uri = f"https://site{i}.example.com/page/{i}.html"
        hdr = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Date: 2024-05-20T00:00:00Z\r\n"
               f"WARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\nWARC-Target-URI: {uri}\r\n"
               f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(block)}\r\n\r\n").encode()
        fhs[i * n_files // n_pages].write(gzip.compress(hdr + block + b"\r\n\r\n", compresslevel=6))
    for f in fhs:
        f.close()
    return [str(p) for p in paths]


def bare(path: str) -> tuple[int, int, int]:
    """The baseline: warcio + lxml tree per page, counting <img> with a non-empty alt."""
    import lxml.html
    from warcio.archiveiterator import ArchiveIterator

    pages = nbytes = imgs = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            if "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                continue
            body = rec.content_stream().read()
            pages += 1
            nbytes += len(body)
            try:
                doc = lxml.html.fromstring(body)
            except Exception:  # noqa: BLE001
                continue
            imgs += sum(1 for e in doc.iter("img") if (e.get("alt") or "").strip())
    return pages, nbytes, imgs


def full(path: str) -> tuple[int, int, int]:
    from laion_assets.core.extract import ExtractConfig, extract_shard

    r = extract_shard([path], crawl="BENCH", config=ExtractConfig())
    return r.stats["html_pages"], r.stats["html_bytes"], r.stats["pairs_kept"]


def warm() -> None:
    """Load the language model and compile regexes outside the timed region, as a long worker would."""
    from laion_assets.core.extract import language

    language.detect("warm up the model")
    language.detect_many(["warm up the model"])  # builds the batch tables (DFA arrays, float32 NB table)


def timed(fn, paths: list[str], workers: int) -> tuple[float, float, int, int]:
    """(wall s, CPU s of this process, pages, html bytes). CPU is only meaningful for workers == 1."""
    t0, c0 = time.perf_counter(), time.process_time()
    if workers == 1:
        res = [fn(p) for p in paths]
    else:
        with ProcessPoolExecutor(workers, initializer=warm) as ex:
            # Start (fork) and warm every worker before the clock starts: the timed region is the work.
            list(ex.map(time.sleep, [0.2] * workers))
            t0 = time.perf_counter()
            res = list(ex.map(fn, paths))
    return time.perf_counter() - t0, time.process_time() - c0, sum(r[0] for r in res), sum(r[1] for r in res)


def main() -> None:
    from laion_assets.core.lib.cpus import available_cpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=3000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved baseline/full rounds; the best of each is kept")
    ap.add_argument("--warc", nargs="*")
    ap.add_argument("--repeat-captions", action="store_true",
                    help="keep the copies' alt texts identical (caches hit; flatters the full extractor)")
    args = ap.parse_args()
    workers = min(2, available_cpus())
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.warc or build_warcs(args.pages, args.files, Path(tmp), not args.repeat_captions)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"files={len(paths)} compressed_MB={size / 1e6:.1f} cpus={available_cpus()} load={os.getloadavg()}")
        warm()
        best: dict[str, tuple[float, float]] = {}
        for r in range(args.rounds):
            for name, fn in (("baseline", bare), ("full", full)):
                dt, cpu, pages, nbytes = timed(fn, paths, 1)
                print(f"round {r} {name:8s} pages={pages} wall_s={dt:.2f} cpu_s={cpu:.2f} pages_per_s={pages / dt:.0f} "
                      f"pages_per_cpu_s={pages / cpu:.0f} html_MB_per_s={nbytes / dt / 1e6:.1f}")
                w, c = best.get(name, (1e9, 1e9))
                best[name] = (min(w, dt), min(c, cpu))
        dt2, _, pages2, _ = timed(full, paths, workers)
        print(f"full     workers={workers} pages={pages2} wall_s={dt2:.2f} pages_per_s={pages2 / dt2:.0f}")
    f1, b1 = pages / best["full"][0], pages / best["baseline"][0]
    fc, bc = pages / best["full"][1], pages / best["baseline"][1]
    print(f"scaling full {workers} workers / 1 worker = {pages2 / dt2 / f1:.2f}x; load after: {os.getloadavg()}")
    print(f"bench: extract pages_per_s={f1:.0f} baseline_pages_per_s={b1:.0f} ratio={f1 / b1:.2f} "
          f"pages_per_cpu_s={fc:.0f} baseline_pages_per_cpu_s={bc:.0f} cpu_ratio={fc / bc:.2f}")


if __name__ == "__main__":
    main()
