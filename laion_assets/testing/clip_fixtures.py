"""Build a download-stage-shaped shard (WebDataset tars + downloads/pairs tables) from samples.

Tests and the bench use it so they do not depend on the download stage's code: members are
`<key>.jpg` (JPEG, as the download stage writes them), `<key>.txt` and `<key>.json`.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
from PIL import Image

from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA
from laion_assets.core.schemas.pairs import PAIR_SCHEMA


@dataclass(frozen=True)
class Sample:
    key: str
    image: Image.Image | bytes | None  # bytes are written verbatim (e.g. corrupt data); None = not downloaded
    text: str
    language: str | None = "en"
    in_tar: bool = True  # False: an `ok` row whose member is missing from the tar


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_shard(images_dir: Path, samples: Sequence[Sample], per_tar: int = 10_000
                ) -> tuple[pa.Table, pa.Table]:
    """Write NNNNN.tar files under images_dir; return (downloads, pairs) tables for the samples."""
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    dl_rows, pair_rows = [], []
    for t0 in range(0, len(samples), per_tar):
        tar_name = f"{t0 // per_tar:05d}.tar"
        with tarfile.open(images_dir / tar_name, "w") as tf:
            for s in samples[t0 : t0 + per_tar]:
                ok = s.image is not None
                data = b""
                if ok:
                    data = s.image if isinstance(s.image, bytes) else jpeg_bytes(s.image)
                    if s.in_tar:
                        _add(tf, f"{s.key}.jpg", data)
                        _add(tf, f"{s.key}.txt", s.text.encode())
                        _add(tf, f"{s.key}.json", json.dumps({"key": s.key, "caption": s.text}).encode())
                w = h = None
                if ok and not isinstance(s.image, bytes):
                    w, h = s.image.size
                dl_rows.append({
                    "key": s.key, "url": f"https://example.invalid/{s.key}.jpg",
                    "status": "ok" if ok else "failed", "reason": None if ok else "http_404",
                    "error": None, "http_status": 200 if ok else 404, "content_type": "image/jpeg",
                    "bytes": len(data), "width": w, "height": h, "resized_width": w, "resized_height": h,
                    "sha256": None, "md5": None, "tar_path": tar_name if ok else None,
                    "tar_member": f"{s.key}.jpg" if ok else None, "attempts": 1, "elapsed_ms": 1.0,
                    "fetched_at": now,
                })
                pair_rows.append({
                    "key": s.key, "url": f"https://example.invalid/{s.key}.jpg", "text": s.text,
                    "page_url": "https://example.invalid/", "crawl": "CC-TEST", "warc_path": "test.warc.gz",
                    "warc_offset": 0, "caption_language": s.language, "optout_page": False,
                })
    return (pa.Table.from_pylist(dl_rows, schema=DOWNLOAD_SCHEMA),
            pa.Table.from_pylist(pair_rows, schema=PAIR_SCHEMA))
