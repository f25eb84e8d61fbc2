"""Bench: extraction pages/s on ONE core next to ALL usable cores, same files, same run.

A crawl is extracted file by file (one WARC per shard task), so the all-core figure is N files read
by N worker processes at once (`ProcessPoolExecutor`, one `extract_shard` per file), against the
same files read one after another in one worker. Pages are the real HTML pages of
$LAION_REAL_WARC_DIR (or ../shared/data/real-warc) when present, else generated web-like pages
(a lent device machine has no shared data), every file distinct (alt texts numbered): cold, as a
crawl is read once. Each worker is started and warmed (imports, language model) before the clock.

    python bench/extract_cores.py [--files 0 (= 2 x cores)] [--pages 400]
Last line: bench: extract_cores cores=<n> one_core_pages_per_s=<..> all_cores_pages_per_s=<..> ratio=<all/one>
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.extract import REAL, build, real_pages  # noqa: E402
from laion_assets.core.lib.cpus import available_cpus  # noqa: E402

WORDS = ("red", "blue", "ceramic", "mug", "harbour", "sunset", "vintage", "poster", "garden", "chair",
         "wooden", "table", "portrait", "river", "mountain", "handmade", "print", "summer", "lamp", "book")


def generated_pages(n: int = 200, seed: int = 0) -> list[tuple[str, bytes]]:
    """Web-like pages: a head with metas, navigation, boilerplate logos, an article with 10-40 images
    (alt texts of 1-12 words, some lazy-loaded, some relative), scripts and a footer."""
    rng = random.Random(seed)
    out = []
    for p in range(n):
        imgs = []
        for i in range(rng.randint(10, 40)):
            alt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
            src = f"/img/{p}/{i}.jpg" if i % 3 else f"https://cdn{i % 5}.example.net/{p}/{i}.jpg"
            attr = f'data-src="{src}" src="data:image/gif;base64,R0lGOD"' if i % 7 == 0 else f'src="{src}"'
            imgs.append(f'<figure><img {attr} alt="{alt}" width="300" height="200"><figcaption>{alt}</figcaption></figure>')
        body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Page {p}</title>"
                f'<meta name="description" content="{" ".join(rng.choice(WORDS) for _ in range(20))}">'
                "<script>var x = 1; function f(a){return a<2}</script><style>.a{color:red}</style></head><body>"
                '<nav><a href="/">Home</a><img src="/logo.png" alt="Logo"></nav><article>'
                + "".join(f"<p>{' '.join(rng.choice(WORDS) for _ in range(60))}</p>{im}" for im in imgs)
                + "</article><footer>(c) example</footer></body></html>")
        out.append(("text/html; charset=utf-8", body.encode()))
    return out


def _warm(_: int) -> int:
    from laion_assets.core.extract import ExtractConfig, extract_shard  # noqa: F401  imports in the worker

    return os.getpid()


def _extract(path: str) -> tuple[int, int, float]:
    from laion_assets.core.extract import ExtractConfig, extract_shard

    c0 = time.process_time()
    r = extract_shard([path], crawl="BENCH", config=ExtractConfig())
    return r.stats["html_pages"], r.stats["pairs_kept"], time.process_time() - c0


def run(paths: list[str], workers: int) -> tuple[int, int, float, float]:
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_warm, range(workers * 2)))
        _ = list(pool.map(_extract, paths[:workers]))  # language model and caches loaded per worker
        t0 = time.perf_counter()
        res = list(pool.map(_extract, paths[workers:]))
        wall = time.perf_counter() - t0
    return sum(r[0] for r in res), sum(r[1] for r in res), wall, sum(r[2] for r in res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=0, help="timed files per side (0: 2 x cores)")
    ap.add_argument("--pages", type=int, default=400, help="pages per file")
    args = ap.parse_args()
    cores = available_cpus()
    n = args.files or 2 * cores
    pages = real_pages() if REAL.is_dir() else []
    source = f"real pages of {REAL}" if pages else "generated pages"
    pages = pages or generated_pages()
    print(f"cores={cores} files={n} pages_per_file={args.pages} source={source} load={os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for side, workers, base in (("one", 1, 0), ("all", cores, 10_000)):
            paths = [build(pages, args.pages, base + i, Path(tmp), "warc") for i in range(n + workers)]
            pg, rows, wall, cpu = run(paths, workers)
            out[side] = pg / wall
            print(f"{side:3s} workers={workers} pages={pg} rows={rows} wall_s={wall:.2f} cpu_s={cpu:.2f} "
                  f"pages_per_s={pg / wall:.0f} pages_per_cpu_s={pg / cpu:.0f}")
            for p in paths:
                os.unlink(p)
    print(f"load={os.getloadavg()}")
    print(f"bench: extract_cores cores={cores} one_core_pages_per_s={out['one']:.0f} "
          f"all_cores_pages_per_s={out['all']:.0f} ratio={out['all'] / out['one']:.2f}")


if __name__ == "__main__":
    main()
