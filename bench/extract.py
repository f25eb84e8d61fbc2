"""Benchmark: full extractor vs a bare warcio + lxml loop that only counts <img alt>, same files, same run.

Builds (or takes, --warc) per-record-gzip WARCs of real pages: every HTML response of
../shared/data/real-warc replicated under distinct URLs. Prints pages/s and HTML MB/s for
  baseline  warcio ArchiveIterator + lxml.html.fromstring + count img[@alt], 1 process
  full      extract_shard (every rule, language, provenance), 1 and 2 processes over the same files
Last line: bench: extract pages_per_s=<full> baseline_pages_per_s=<bare> ratio=<full/bare>

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


def timed(fn, paths: list[str], workers: int) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    if workers == 1:
        c0 = time.process_time()
        res = [fn(p) for p in paths]
        print(f"  (cpu_s={time.process_time() - c0:.2f})", end=" ")
    else:
        with ProcessPoolExecutor(workers, initializer=warm) as ex:
            # Start (fork) and warm every worker before the clock starts: the timed region is the work.
            list(ex.map(time.sleep, [0.2] * workers))
            t0 = time.perf_counter()
            res = list(ex.map(fn, paths))
    dt = time.perf_counter() - t0
    return dt, sum(r[0] for r in res), sum(r[1] for r in res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=3000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--warc", nargs="*")
    ap.add_argument("--repeat-captions", action="store_true",
                    help="keep the copies' alt texts identical (caches hit; flatters the full extractor)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.warc or build_warcs(args.pages, args.files, Path(tmp), not args.repeat_captions)
        size = sum(os.path.getsize(p) for p in paths)
        from laion_assets.core.cpus import available_cpus

        print(f"files={len(paths)} compressed_MB={size / 1e6:.1f} cpus={available_cpus()} load={os.getloadavg()}")
        warm()
        rows = {}
        for name, fn, workers in (("baseline", bare, 1), ("full", full, 1), ("full", full, 2)):
            dt, pages, nbytes = timed(fn, paths, workers)
            rows[(name, workers)] = pages / dt
            print(f"{name:8s} workers={workers} pages={pages} s={dt:.2f} pages_per_s={pages / dt:.0f} html_MB_per_s={nbytes / dt / 1e6:.1f}")
    f1, f2, b1 = rows[("full", 1)], rows[("full", 2)], rows[("baseline", 1)]
    print(f"scaling full 2 workers / 1 worker = {f2 / f1:.2f}x")
    print(f"bench: extract pages_per_s={f1:.0f} baseline_pages_per_s={b1:.0f} ratio={f1 / b1:.2f}")


if __name__ == "__main__":
    main()
