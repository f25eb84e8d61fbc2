"""A bucket laid out like Common Crawl's (`crawl-data/<crawl>/warc.paths.gz` + segment WARC files).

Filled from real WARC files (`../shared/data/real-warc/` when present, copied at test time, never
into the repo) or, without them, from the sample crawl generator. Works on any S3 API (moto's
server in tests) or a local directory served over HTTP.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

REAL_WARC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-warc"


def source_warcs(limit: int = 4) -> list[Path]:
    """Real WARC files when the shared folder has them, else freshly generated sample WARCs."""
    real = sorted(REAL_WARC_DIR.glob("*.warc.gz")) if REAL_WARC_DIR.is_dir() else []
    if real:
        return real[:limit]
    from laion_assets.core.sample.crawl import SampleSpec, build_sample_crawl

    out = Path(tempfile.mkdtemp(prefix="cc-layout-"))
    build_sample_crawl(out, "http://127.0.0.1:9", SampleSpec(warc_files=min(limit, 3)))
    return sorted((out / "warc").glob("*.warc*"))[:limit]


def cc_layout(crawl: str, warcs: list[Path]) -> dict[str, bytes]:
    """key -> bytes of a Common Crawl style listing: `crawl-data/<crawl>/warc.paths.gz` and the files."""
    objects: dict[str, bytes] = {}
    paths = []
    for i, src in enumerate(warcs):
        path = f"crawl-data/{crawl}/segments/1700000000000.{i:02d}/warc/{crawl}-20990101000000-{i:05d}.warc.gz"
        objects[path] = src.read_bytes()
        paths.append(path)
    objects[f"crawl-data/{crawl}/warc.paths.gz"] = gzip.compress(("\n".join(paths) + "\n").encode())
    return objects


def put_cc_layout(client: Any, bucket: str, crawl: str, warcs: list[Path]) -> dict[str, bytes]:
    """Objects readable without credentials, as on Common Crawl's public bucket."""
    objects = cc_layout(crawl, warcs)
    client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")
    return objects


def write_cc_layout(root: Path, crawl: str, warcs: list[Path]) -> dict[str, bytes]:
    objects = cc_layout(crawl, warcs)
    for key, data in objects.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return objects
