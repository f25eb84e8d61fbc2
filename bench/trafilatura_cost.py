"""What trafilatura would cost in extraction: its metadata pass vs our whole extractor.

Reads the HTML pages of the real WARC files (../shared/data/real-warc, or --warcs), times
`trafilatura.metadata.extract_metadata` (title, language, licence: what the extractor needs of a page)
and `trafilatura.extract` (full text) per page, next to `extract_shard` over the same files (WARC
reading, every LAION rule, language, provenance). This is why the extractor reads title, language
and licence in its own tag scan instead.

    python bench/trafilatura_cost.py
"""

import argparse
import glob
import time
from pathlib import Path

from trafilatura import extract
from trafilatura.metadata import extract_metadata
from warcio.archiveiterator import ArchiveIterator

from laion_assets.core.extract import extract_shard

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-warc"


def html_pages(files: list[str]) -> list[str]:
    pages = []
    for f in files:
        with open(f, "rb") as fh:
            for r in ArchiveIterator(fh):
                if r.rec_type == "response" and "html" in (r.http_headers.get_header("Content-Type") or ""):
                    pages.append(r.content_stream().read().decode("utf-8", "replace"))
    return pages


def rate(fn, items, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        for x in items:
            fn(x)
    return repeat * len(items) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warcs", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    files = sorted(glob.glob(f"{args.warcs}/*.warc.gz"))
    if not files:
        raise SystemExit(f"no .warc.gz files in {args.warcs}")
    pages = html_pages(files)
    meta = rate(extract_metadata, pages, args.repeat)
    full = rate(extract, pages[:40], 1)
    t = time.perf_counter()
    for _ in range(args.repeat):
        stats = extract_shard(files, crawl="bench").stats
    ours = args.repeat * stats["html_pages"] / (time.perf_counter() - t)
    print(f"pages={len(pages)} files={len(files)}")
    print(f"trafilatura.extract_metadata pages_per_s={meta:.0f}")
    print(f"trafilatura.extract          pages_per_s={full:.0f}")
    print(f"extract_shard (everything)   pages_per_s={ours:.0f}")
    print(f"bench: trafilatura_cost pages_per_s={meta:.0f} baseline_pages_per_s={ours:.0f} ratio={meta / ours:.2f}")


if __name__ == "__main__":
    main()
