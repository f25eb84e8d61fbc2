"""Every image reaches the model as 8-bit RGB, whatever the file: real bytes made here, per format."""

from __future__ import annotations

import io
import tarfile
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from laion_assets.core.clip.inputs import (
    Normalizer,
    decode_batch_on_device,
    decode_cpu,
    index_tar,
    normalize,
    to_rgb8,
)

H, W = 12, 16


def _gradient16() -> np.ndarray:
    """A 16-bit RGB image using the whole range: values far above 255."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 4000, y * 5000, np.full_like(x, 65535)], axis=-1).astype(np.uint16)


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (PIL cannot write one): IHDR bit depth 16, colour type 2."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(arr.shape[0]))
    ihdr = struct.pack(">IIBBBBB", arr.shape[1], arr.shape[0], 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _as_hwc(t: torch.Tensor) -> np.ndarray:
    assert t.dtype == torch.uint8 and t.ndim == 3 and t.shape[0] == 3
    return t.permute(1, 2, 0).numpy()


def test_16bit_rgb_png_is_scaled_to_8_bits():
    arr = _gradient16()
    out = _as_hwc(decode_cpu(_png16_rgb(arr)))
    want = np.round(arr.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
    assert out.max() == 255 and out[..., 0].max() > 200  # not clipped, not wrapped


def test_16bit_gray_png_is_scaled_to_8_bits():
    gray = (_gradient16()[..., 0] + 1000).astype(np.uint16)
    im = Image.fromarray(gray)
    assert im.mode == "I;16"
    data = _save(im, "PNG")
    out = _as_hwc(decode_cpu(data))
    want = np.round(gray.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.abs(out[..., 0].astype(int) - want.astype(int)).max() <= 1
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize("mode,fmt", [("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("1", "PNG"), ("L", "JPEG"),
                                      ("CMYK", "JPEG"), ("RGB", "WEBP"), ("P", "GIF"), ("RGB", "BMP"),
                                      ("RGB", "TIFF")])
def test_other_modes_decode_like_pil_convert_rgb(mode, fmt):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "RGB")
    im = base.convert(mode) if mode != "P" else base.quantize(16)
    data = _save(im, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = _as_hwc(decode_cpu(data))
    with Image.open(io.BytesIO(data)) as ref:
        want = np.asarray(ref.convert("RGB"))
    tol = 3 if fmt == "JPEG" else 0  # JPEG decoders may round differently
    assert out.shape == want.shape and np.abs(out.astype(int) - want.astype(int)).max() <= tol


def test_exif_rotation_is_applied():
    im = Image.new("RGB", (W, H), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = decode_cpu(_save(im, "JPEG", exif=exif.tobytes()))
    assert tuple(out.shape[1:]) == (W, H)


def test_to_rgb8_rejects_float_and_keeps_uint8():
    x = torch.randint(0, 255, (3, 4, 4), dtype=torch.uint8)
    assert torch.equal(to_rgb8(x), x)
    with pytest.raises(ValueError):
        to_rgb8(x.float())


def test_device_decode_takes_packed_bytes_and_16bit_png():
    rng = np.random.default_rng(1)
    jpeg = _save(Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)), "JPEG")
    png16 = _png16_rgb(_gradient16())
    blobs = [jpeg, png16, b"\xff\xd8 not a jpeg", jpeg]
    raw = torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8)
    sizes = torch.tensor([len(b) for b in blobs])
    is_jpeg = torch.tensor([b[:2] == b"\xff\xd8" for b in blobs])
    pp = {"size": (8, 8), "interpolation": "bicubic", "resize_mode": "shortest"}
    crops, bad = decode_batch_on_device(raw, sizes, is_jpeg, pp, torch.device("cpu"))
    assert bad == [2] and crops.shape == (3, 3, 8, 8) and crops.dtype == torch.uint8
    assert torch.equal(crops[0], crops[2])


def test_cached_normalizer_matches_totensor_normalize():
    pp = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = torch.tensor(pp["mean"]).view(1, 3, 1, 1), torch.tensor(pp["std"]).view(1, 3, 1, 1)
    want = (x.float() / 255.0 - mean) / std
    torch.testing.assert_close(Normalizer(pp, torch.device("cpu"))(x), want, rtol=0, atol=2e-6)
    torch.testing.assert_close(normalize(x, pp), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_index_equals_tarfile_on_every_format(tmp_path, fmt):
    names = [f"{i:09d}.jpg" for i in range(50)] + ["sub/dir/a.json", "e"]
    if fmt != tarfile.USTAR_FORMAT:
        names += ["d/" + "x" * 150 + ".jpg", "ü.txt"]  # GNU long name / pax header: the tarfile path
    p = tmp_path / "t.tar"
    with tarfile.open(p, "w", format=fmt) as tf:
        for i, n in enumerate(names):
            data = bytes([i % 256]) * (i * 37 % 1500)
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("sub")
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
    with tarfile.open(p) as tf:
        want = {m.name: (m.offset_data, m.size) for m in tf if m.isfile()}
    assert index_tar(p) == want and len(want) == len(names)
