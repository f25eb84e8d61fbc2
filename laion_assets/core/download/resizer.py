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

import numpy as np
import pdqhash
from PIL import Image

# Downscaling filter by name. "area" (Pillow's BOX: exact area averaging) is what img2dataset uses for
# downscaling (cv2.INTER_AREA) and costs ~0.4 ms less than Lanczos per LAION-size image after draft();
# upscaling always uses Lanczos (img2dataset: INTER_LANCZOS4).
DOWNSCALE_FILTERS = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
                     "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
# PDQ's own first step is a Jarosz box filter down to 64x64; the reference tool downsizes to 512 px
# first for speed. We hash the resized (pre-crop) image box-reduced to this shorter side: 2x PDQ's
# grid, ~0.6 ms per image instead of ~1 ms at 256 px and ~3.7 ms at 512 px.
PDQ_SIDE = 128

# Pillow opens 16-bit grayscale PNGs in these modes; a plain convert("L"/"RGB") clips 0..65535 at 255,
# so such an image would be stored near-white. (16-bit RGB(A) PNGs already open as 8-bit.)
SIXTEEN_BIT_GRAY = ("I", "I;16", "I;16B", "I;16L", "I;16N")

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
    sha256: str  # hex digests of the original bytes, as fetched (removal lists name images by these)
    md5: str
    sha1: str
    format: str
    pdq: str  # 64 lowercase hex chars (256 bits), the reference tool's hex order
    pdq_quality: int  # 0..100; PDQ's own quality (low = flat image, hash not reliable)


def pdq_hash(img: Image.Image) -> tuple[str, int]:
    """PDQ of an RGB image as (64-hex string in the reference's format, quality 0..100).

    pdqhash's vector is bit 255 first, so packing it MSB-first gives the reference `Hash256::format()`
    hex (words w[15]..w[0])."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    if min(w, h) > PDQ_SIDE:
        scale = PDQ_SIDE / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX,
                         reducing_gap=2.0)
    bits, quality = pdqhash.compute(np.asarray(img))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def target_size(w: int, h: int, size: int, mode: str, only_if_bigger: bool) -> tuple[int, int]:
    """Size the whole image is scaled to before any crop/border (img2dataset's semantics)."""
    if mode == "no" or (only_if_bigger and max(w, h) <= size):
        return w, h
    if mode in ("keep_ratio", "center_crop"):  # smaller side -> size
        scale = size / min(w, h)
    else:  # border: larger side -> size
        scale = size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per decoded pixel: 1 for 1/L/P, 2 for 16-bit gray, else 4 (RGB is padded)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def process_image(
    data: bytes,
    *,
    image_size: int = 256,
    resize_mode: str = "keep_ratio",
    max_pixels: int = 64_000_000,
    encode_quality: int = 95,
    resize_only_if_bigger: bool = False,
    border_color: tuple[int, int, int] = (255, 255, 255),
    downscale_filter: str = "area",
    max_output_pixels: int = 16_777_216,
    max_decode_bytes: int = 256 * 1024 * 1024,
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
    if tw * th > max_output_pixels:  # 100000x2 at keep_ratio 256 would be 12.8M x 256: ~12 GiB
        raise ImageRejected("output_too_large", f"{w}x{h} -> {tw}x{th} > {max_output_pixels} pixels")
    decoded = w * h * _bytes_per_pixel(img.mode)
    if fmt != "JPEG" and decoded > max_decode_bytes:  # JPEG decodes at the draft() scale, below
        raise ImageRejected("decompression_bomb", f"{w}x{h} {img.mode}: {decoded} bytes > max_decode_bytes")
    try:
        if fmt == "JPEG" and (tw, th) != (w, h):
            img.draft("RGB", (tw, th))  # decode at the smallest DCT scale still >= target
        if fmt == "JPEG" and img.size[0] * img.size[1] * _bytes_per_pixel(img.mode) > max_decode_bytes:
            raise ImageRejected("decompression_bomb", f"{img.size} {img.mode} after draft > max_decode_bytes")
        img.load()
        if img.size != (tw, th) and tw * th < img.width * img.height and img.mode in ("RGBA", "LA", "RGB", "L"):
            # Downscale first, in the decoded mode (Pillow premultiplies alpha): the full-size
            # convert/composite copies below then never exist (an 8000x8000 RGBA PNG peaked ~1 GB).
            img = img.resize((tw, th), DOWNSCALE_FILTERS[downscale_filter], reducing_gap=3.0)
        if img.mode in SIXTEEN_BIT_GRAY:  # 16-bit grayscale PNG: scale to 8 bits (convert() clips)
            img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
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
            down = tw * th < img.width * img.height
            img = img.resize((tw, th), DOWNSCALE_FILTERS[downscale_filter] if down
                             else Image.Resampling.LANCZOS, reducing_gap=3.0 if down else None)
        pdq, pdq_quality = pdq_hash(img)  # before crop/border: the whole picture, as a list holder hashed it
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
        sha1=hashlib.sha1(data).hexdigest(),
        format=fmt,
        pdq=pdq,
        pdq_quality=pdq_quality,
    )
