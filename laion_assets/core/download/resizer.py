"""Decode, guard, resize and re-encode one image; pure CPU, safe to run in threads (Pillow releases
the GIL in decode/resize/encode).

Order matters for safety: magic bytes first, then the header's dimensions are checked against
`max_pixels` *before* any pixel is decoded, so a decompression bomb is never allocated. For JPEG,
`draft()` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling) when the target is smaller,
which is the single largest speed-up for LAION-size thumbnails.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

ALLOWED_CONTENT_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG",
                         "image/png": "PNG", "image/webp": "WEBP"}


class ImageRejected(Exception):
    """Carries a reason from the vocabulary."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def sniff(data: bytes) -> str | None:
    """Format from magic bytes: JPEG, PNG, WEBP or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def content_type_format(content_type: str | None) -> str | None:
    """'image/jpeg; charset=x' -> 'JPEG'; unknown -> None."""
    if not content_type:
        return None
    return ALLOWED_CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())


@dataclass
class Processed:
    jpeg: bytes
    width: int
    height: int
    resized_width: int
    resized_height: int
    sha256: str
    md5: str
    format: str


def target_size(w: int, h: int, size: int, mode: str, only_if_bigger: bool) -> tuple[int, int]:
    """Size the whole image is scaled to before any crop/border (img2dataset's semantics)."""
    if mode == "no" or (only_if_bigger and max(w, h) <= size):
        return w, h
    if mode in ("keep_ratio", "center_crop"):  # smaller side -> size
        scale = size / min(w, h)
    else:  # border: larger side -> size
        scale = size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def process_image(
    data: bytes,
    *,
    image_size: int = 256,
    resize_mode: str = "keep_ratio",
    max_pixels: int = 64_000_000,
    encode_quality: int = 95,
    resize_only_if_bigger: bool = False,
    border_color: tuple[int, int, int] = (255, 255, 255),
) -> Processed:
    fmt = sniff(data)
    if fmt is None:
        raise ImageRejected("not_an_image", repr(data[:16]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected("decompression_bomb", str(e)) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt headers
        raise ImageRejected("decode_error", repr(e)) from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageRejected("decode_error", f"bad size {w}x{h}")
    if w * h > max_pixels:
        raise ImageRejected("decompression_bomb", f"{w}x{h} > {max_pixels} pixels")
    tw, th = target_size(w, h, image_size, resize_mode, resize_only_if_bigger)
    try:
        if fmt == "JPEG" and (tw, th) != (w, h):
            img.draft("RGB", (tw, th))  # decode at the smallest DCT scale still >= target
        img.load()
        if img.mode not in ("RGB", "L"):
            if "A" in img.getbands() or img.mode in ("P", "PA") and "transparency" in img.info:
                rgba = img.convert("RGBA")
                bg = Image.new("RGB", rgba.size, border_color)
                bg.paste(rgba, mask=rgba.getchannel("A"))
                img = bg
            else:
                img = img.convert("RGB")
        if img.mode == "L":
            img = img.convert("RGB")
        if img.size != (tw, th):
            img = img.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if resize_mode == "center_crop" and img.width != img.height:
            s = min(img.size)
            left, top = (img.width - s) // 2, (img.height - s) // 2
            img = img.crop((left, top, left + s, top + s))
        elif resize_mode == "border" and (tw, th) != (w, h):
            s = image_size
            canvas = Image.new("RGB", (s, s), border_color)
            canvas.paste(img, ((s - img.width) // 2, (s - img.height) // 2))
            img = canvas
        out = io.BytesIO()
        img.save(out, "JPEG", quality=encode_quality)
    except Image.DecompressionBombError as e:
        raise ImageRejected("decompression_bomb", str(e)) from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data surfaces here
        raise ImageRejected("decode_error", repr(e)) from None
    return Processed(
        jpeg=out.getvalue(),
        width=w,
        height=h,
        resized_width=img.width,
        resized_height=img.height,
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        format=fmt,
    )
