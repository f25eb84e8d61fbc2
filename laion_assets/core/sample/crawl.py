"""The embedded default's own crawl: WARC files of generated pages whose images a local server hosts.

No network is needed: pages are written with warcio exactly as a crawler would, their `<img>` tags
point at synthetic images on 127.0.0.1, and `expected_release` says which pairs a correct pipeline
publishes. The sample exercises every stage: captions that describe their image (kept) and captions
that do not (dropped by CLIP), duplicates across shards (removed by dedup), images that 404
(recorded as failed downloads), tags the extractor must ignore (no alt, data:, .svg, .gif), page
licences (a `rel="license"` Creative Commons link on some pages, so LICENSE reaches the release), and
a placeholder image: the same bytes behind PLACEHOLDER_URLS different URLs with fitting captions
(kept by CLIP, dropped by the release's placeholder rule).
"""

from __future__ import annotations

import io
import json
import random
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laion_assets.core.release.rules import PLACEHOLDER_MIN_URLS
from laion_assets.core.sample.synthetic import COLORS, SHAPES, caption, mismatched, render_image

SAMPLE_CRAWL = "SAMPLE-CRAWL"
WARC_DATE = "2024-05-20T12:00:00Z"
_NS = uuid.UUID("6f1c1b4e-2f0a-4c55-9d1e-6a1c3f1f8e11")
PAGE_LICENSE = "https://creativecommons.org/licenses/by/4.0/"
PLACEHOLDER_URLS = PLACEHOLDER_MIN_URLS + 1  # one over the release's cut-off: always dropped


@dataclass(frozen=True)
class SampleSpec:
    pages: int = 12
    images_per_page: int = 4
    warc_files: int = 4
    mismatch_ratio: float = 0.35
    seed: int = 7


@dataclass(frozen=True)
class SampleCrawl:
    warc_dir: Path
    images_dir: Path
    expected_release: list[tuple[str, str]]
    spec: SampleSpec


def _record_id(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(_NS, '|'.join(parts))}>"


def _write_page(writer: WARCWriter, page_url: str, html: str) -> None:
    body = html.encode("utf-8")
    req = StatusAndHeaders(
        f"GET /{page_url.split('/', 3)[-1]} HTTP/1.1",
        [("Host", page_url.split("/")[2]), ("User-Agent", "laion-assets-sample/1.0")],
        is_http_request=True,
    )
    writer.write_record(
        writer.create_warc_record(
            page_url, "request", payload=io.BytesIO(b""), http_headers=req,
            warc_headers_dict={"WARC-Date": WARC_DATE, "WARC-Record-ID": _record_id(page_url, "req")},
        )
    )
    resp = StatusAndHeaders(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
        protocol="HTTP/1.1",
    )
    writer.write_record(
        writer.create_warc_record(
            page_url, "response", payload=io.BytesIO(body), http_headers=resp,
            warc_headers_dict={"WARC-Date": WARC_DATE, "WARC-Record-ID": _record_id(page_url, "resp")},
        )
    )


def _page_html(title: str, body: str, base: str | None = None, license_url: str | None = None) -> str:
    base_tag = f'<base href="{base}">' if base else ""
    footer = f'<footer><a rel="license" href="{license_url}">CC BY 4.0</a></footer>' if license_url else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"{base_tag}</head><body><h1>{title}</h1>{body}{footer}</body></html>"
    )


def build_sample_crawl(out_dir: Path, image_base_url: str, spec: SampleSpec = SampleSpec()) -> SampleCrawl:
    """Write images under `out_dir/images` and WARC files under `out_dir/warc`.

    `image_base_url` (e.g. http://127.0.0.1:18765) is where `out_dir/images` will be served.
    """
    rng = random.Random(spec.seed)
    base = image_base_url.rstrip("/")
    images_dir, warc_dir = out_dir / "images", out_dir / "warc"
    (images_dir / "img").mkdir(parents=True, exist_ok=True)
    warc_dir.mkdir(parents=True, exist_ok=True)
    (images_dir / "robots.txt").write_text("User-agent: *\nAllow: /\n")

    expected: dict[tuple[str, str], None] = {}
    pages: list[tuple[str, str]] = []
    # One image served under PLACEHOLDER_URLS names ("image not found" stand-ins share their bytes).
    placeholder = io.BytesIO()
    render_image("red", "circle", seed=spec.seed * 100_000 - 1).save(placeholder, "JPEG", quality=90)
    for i in range(PLACEHOLDER_URLS):
        (images_dir / "img" / f"stand-in-{i}.jpg").write_bytes(placeholder.getvalue())
    seen_pairs: list[tuple[str, str, str]] = []  # (abs url, relative-from-page src, alt)
    for p in range(spec.pages):
        page_url = f"{base}/pages/page-{p:03d}.html"
        tags: list[str] = []
        for j in range(spec.images_per_page):
            n = p * spec.images_per_page + j
            color, shape = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
            name = f"{n:04d}-{color}-{shape}.jpg"
            render_image(color, shape, seed=spec.seed * 100_000 + n).save(
                images_dir / "img" / name, "JPEG", quality=90
            )
            url = f"{base}/img/{name}"
            if rng.random() < spec.mismatch_ratio:
                alt = caption(*mismatched(color, shape, seed=n), seed=n)
            else:
                alt = caption(color, shape, seed=n)
                expected[(url, alt)] = None
            src = f"../img/{name}" if j % 2 else url
            tags.append(f'<figure><img src="{src}" alt="{alt}" width="256"></figure>')
            seen_pairs.append((url, f"../img/{name}", alt))
        # Tags a LAION extractor must ignore.
        tags.append('<img src="/static/logo.svg" alt="company logo svg">')
        tags.append('<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline pixel image">')
        tags.append(f'<img src="{base}/img/spacer.gif" alt="transparent spacer">')
        tags.append(f'<img src="{base}/img/no-alt.jpg">')
        if p % 3 == 1:  # an image that is gone: a failed download, never published
            tags.append(f'<img src="{base}/img/missing-{p}.jpg" alt="a red circle that moved away">')
        if p >= 2 and p % 2 == 0:  # the same pair again, on a page in another WARC file
            url, rel, alt = seen_pairs[rng.randrange(len(seen_pairs) - spec.images_per_page)]
            tags.append(f'<img src="{url}" alt="{alt}">')
        if p < PLACEHOLDER_URLS:  # never in expected: the release drops placeholder images
            alt = caption("red", "circle", seed=10_000 + p)
            tags.append(f'<img src="{base}/img/stand-in-{p}.jpg" alt="{alt}">')
        license_url = PAGE_LICENSE if p % 2 == 0 else None
        pages.append((page_url, _page_html(f"Sample page {p}", "\n".join(tags), license_url=license_url)))

    per_file = -(-len(pages) // spec.warc_files)
    for f in range(spec.warc_files):
        path = warc_dir / f"{SAMPLE_CRAWL}-{f:05d}.warc.gz"
        with open(path, "wb") as out:
            writer = WARCWriter(out, gzip=True)
            info = writer.create_warcinfo_record(
                path.name, {"software": "laion-assets sample crawl", "format": "WARC File Format 1.1"}
            )
            # warcio stamps warcinfo with the current time and a random id: fix both, so the sample's
            # bytes (and every WARC offset, hence the release version) are the same on every machine.
            info.rec_headers.replace_header("WARC-Date", WARC_DATE)
            info.rec_headers.replace_header("WARC-Record-ID", _record_id(path.name, "warcinfo"))
            writer.write_record(info)
            for page_url, html in pages[f * per_file : (f + 1) * per_file]:
                _write_page(writer, page_url, html)
    (out_dir / "expected.json").write_text(json.dumps(sorted(expected), indent=1))
    (out_dir / "spec.json").write_text(
        json.dumps({**asdict(spec), "image_base_url": base}, sort_keys=True)
    )
    return SampleCrawl(warc_dir, images_dir, sorted(expected), spec)
