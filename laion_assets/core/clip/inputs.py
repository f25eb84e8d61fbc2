"""Input pipeline: WebDataset tar members -> decoded, resized uint8 crops + caption tokens, in workers.

The tars are indexed once in the parent (member -> byte offset), so workers read each image with one
`os.pread` and no tar parsing. Workers decode (libjpeg-turbo via torchvision), resize and crop to the
model's input size, and tokenize captions; they ship each batch packed as one uint8 tensor of crops
(4x smaller than float) that the main process pins, copies `non_blocking` and normalizes on the
device. With decode on the device the workers ship the batch's file bytes packed in one tensor
instead and the GPU decodes them (nvJPEG) with the same resize/crop code. Every image becomes 8-bit
RGB whatever its file (16-bit PNG, palette, CMYK, EXIF-rotated...).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

_INTERP = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class Item:
    """One `ok` download to score. `reason` set means it is already known to be unscorable."""

    pos: int
    key: str
    tar: str | None
    member: str | None
    text: str | None
    reason: str | None = None


def index_tar(path: Path) -> dict[str, tuple[int, int]]:
    """member name -> (data offset, size); one pass over the tar headers.

    Plain ustar/GNU headers (what WebDataset writers and our download stage produce) are read with
    one pread each (~4x faster than tarfile, which matters for the per-shard setup); anything else
    (pax headers, long names, sparse files, a bad checksum) goes through tarfile.
    """
    try:
        return _index_plain_tar(path)
    except _NotPlain:
        pass
    out: dict[str, tuple[int, int]] = {}
    with tarfile.open(path, "r:") as tf:
        for m in tf:
            if m.isfile():
                out[m.name] = (m.offset_data, m.size)
    return out


class _NotPlain(Exception):
    pass


def _index_plain_tar(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        end, offset = os.fstat(fd).st_size, 0
        while offset + 512 <= end:
            hdr = os.pread(fd, 512, offset)
            if hdr == bytes(512):
                break  # end-of-archive marker
            chksum = hdr[148:156].split(b"\0", 1)[0].strip()
            if not chksum or int(chksum, 8) != sum(hdr[:148]) + 256 + sum(hdr[156:]):
                raise _NotPlain
            kind = hdr[156:157]
            if kind not in (b"0", b"\0", b"5") or hdr[124] & 0x80:
                raise _NotPlain  # pax, GNU long name, links, base-256 size...
            size = int(hdr[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            name = hdr[:100].split(b"\0", 1)[0]
            if hdr[257:262] == b"ustar" and hdr[345] != 0:
                name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
            if kind != b"5":
                out[name.decode("utf-8", "surrogateescape")] = (offset + 512, size)
            offset += 512 + (size + 511) // 512 * 512
        return out
    except ValueError as e:
        raise _NotPlain from e
    finally:
        os.close(fd)


def resize_crop(img: torch.Tensor, pp: dict[str, Any]) -> torch.Tensor:
    """uint8 CHW -> uint8 CHW at the model's input size, like open_clip's eval transform.

    Runs unchanged on CPU tensors (workers) and CUDA tensors (after nvJPEG).
    """
    h, w = pp["size"]
    interp = _INTERP.get(pp.get("interpolation", "bicubic"), InterpolationMode.BICUBIC)
    mode = pp.get("resize_mode", "shortest")
    if mode == "squash":
        return TF.resize(img, [h, w], interpolation=interp, antialias=True)
    ih, iw = img.shape[-2:]
    if mode == "longest":
        scale = min(h / ih, w / iw)
        nh, nw = max(1, round(ih * scale)), max(1, round(iw * scale))
        img = TF.resize(img, [nh, nw], interpolation=interp, antialias=True)
        fill = int(pp.get("fill_color", 0))
        top, left = (h - nh) // 2, (w - nw) // 2
        return TF.pad(img, [left, top, w - nw - left, h - nh - top], fill=fill)
    # shortest side to the target (torchvision Resize(int) semantics), then center crop
    if ih != h or iw != w:
        img = TF.resize(img, min(h, w), interpolation=interp, antialias=True)
    return TF.center_crop(img, [h, w])


class InputPipelineError(RuntimeError):
    """The worker pipeline failed (a worker died, hung past worker_timeout_s, or raised): the shard
    is not scored, so Dagster's retry policy (or the next run) scores it again from scratch."""


def to_rgb8(img: torch.Tensor) -> torch.Tensor:
    """Any decoded CHW tensor -> uint8 RGB. 16-bit PNGs decode as uint16 (0..65535): scaled, not cast."""
    if img.dtype == torch.uint16:
        img = ((img.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)
    elif img.dtype != torch.uint8:
        raise ValueError(f"unsupported decoded dtype {img.dtype}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1).contiguous()
    elif img.shape[0] == 4:
        img = img[:3].contiguous()
    return img


def _pil_rgb8(data: bytes) -> torch.Tensor:
    """PIL fallback for what torchvision does not decode: EXIF-rotated, 16/32-bit integer gray
    ('I;16', 'I'), CMYK, palette, 1-bit, LA, ... -> uint8 RGB (PIL's convert clips 16-bit to 255)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):  # 16-bit or 32-bit integer gray
            arr = np.asarray(im).astype(np.int64)
            scale = 65535 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
            gray = ((np.clip(arr, 0, scale) * 255 + scale // 2) // scale).astype(np.uint8)
            rgb = np.repeat(gray[..., None], 3, axis=2)
        else:
            rgb = np.array(im.convert("RGB"))
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def decode_cpu(data: bytes | torch.Tensor) -> torch.Tensor:
    """Bytes -> uint8 RGB CHW, EXIF orientation applied. JPEG via libjpeg-turbo, PNG/WebP/GIF via
    torchvision (16-bit scaled to 8), anything else (or a decoder error) via PIL."""
    buf = data if isinstance(data, torch.Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        if is_jpeg_bytes(buf):
            return to_rgb8(decode_jpeg(buf, mode=ImageReadMode.RGB, apply_exif_orientation=True))
        return to_rgb8(decode_image(buf, mode=ImageReadMode.RGB, apply_exif_orientation=True))
    except (RuntimeError, ValueError):
        return _pil_rgb8(buf.numpy().tobytes())


def is_jpeg_bytes(buf: torch.Tensor) -> bool:
    return len(buf) >= 2 and int(buf[0]) == 0xFF and int(buf[1]) == 0xD8


class Normalizer:
    """uint8 NCHW -> (x / 255 - mean) / std, as ToTensor + Normalize give, in one fused multiply-add
    whose scale and shift are built once on the device (not per batch)."""

    def __init__(self, pp: dict[str, Any], device: torch.device, dtype: torch.dtype = torch.float32):
        mean = torch.tensor(pp["mean"], dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(pp["std"], dtype=torch.float64).view(1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * std)).to(device=device, dtype=torch.float32)
        self.shift = (-mean / std).to(device=device, dtype=torch.float32)
        self.dtype = dtype

    def __call__(self, batch_u8: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, batch_u8.float(), self.scale).to(self.dtype)


def normalize(batch_u8: torch.Tensor, pp: dict[str, Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-off form of Normalizer (builds the constants each call)."""
    return Normalizer(pp, batch_u8.device, dtype)(batch_u8)


class ShardBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item i is the whole batch i, so a worker builds a batch end to end.

    A batch crosses the process boundary as a handful of tensors whatever its size: one uint8 tensor
    of crops (or, for device decode, of concatenated file bytes plus their sizes), positions and
    tokens. Each shared tensor costs a file descriptor in flight; 1024 separate tensors per batch
    ran a worker out of descriptors (EMFILE) under a 1024 open-files limit and took ~0.5 s to receive.
    """

    def __init__(self, batches: Sequence[Sequence[Item]], pp: dict[str, Any],
                 tokenizer: Callable[..., torch.Tensor], decode_on_worker: bool):
        self.batches = batches
        self.pp = pp
        self.tokenizer = tokenizer
        self.decode_on_worker = decode_on_worker
        self._fds: dict[str, int] = {}
        # tar -> member index, built lazily where the batch is read (each worker, for the tars it
        # reads): the index grows with the shard, so it must not be serial work before the loop
        self._indexes: dict[str, dict[str, tuple[int, int]] | None] = {}

    def __len__(self) -> int:
        return len(self.batches)

    def _locate(self, item: Item) -> tuple[int, int] | str:
        """(offset, size) of the member, or the reason it cannot be read."""
        if item.tar not in self._indexes:
            try:
                self._indexes[item.tar] = index_tar(Path(item.tar))
            except (OSError, tarfile.TarError, EOFError):
                self._indexes[item.tar] = None
        index = self._indexes[item.tar]
        if index is None:
            return "missing_tar"  # absent or unreadable as a tar
        return index.get(item.member) or "missing_member"

    def _read(self, item: Item, offset: int, size: int) -> bytes:
        fd = self._fds.get(item.tar)
        if fd is None:
            fd = self._fds[item.tar] = os.open(item.tar, os.O_RDONLY)
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"{item.tar}: short read at {offset}")
        return data

    def __getitem__(self, i: int) -> dict[str, Any]:
        pos: list[int] = []
        images: list[torch.Tensor] = []
        blobs: list[bytes] = []
        texts: list[str] = []
        failed: list[tuple[int, str]] = []
        for item in self.batches[i]:
            if item.reason is not None:
                failed.append((item.pos, item.reason))
                continue
            loc = self._locate(item)
            if isinstance(loc, str):
                failed.append((item.pos, loc))
                continue
            try:
                data = self._read(item, *loc)
            except OSError:
                failed.append((item.pos, "missing_member"))
                continue
            if self.decode_on_worker:
                try:
                    images.append(resize_crop(decode_cpu(data), self.pp))
                except Exception:  # any decoder error means this one image is unusable
                    failed.append((item.pos, "undecodable_image"))
                    continue
            else:
                blobs.append(data)  # decoded on the device by the consumer
            pos.append(item.pos)
            texts.append(item.text or "")
        tokens = self.tokenizer(texts) if texts else torch.zeros((0, 1), dtype=torch.long)
        out: dict[str, Any] = {"pos": torch.tensor(pos, dtype=torch.long), "tokens": tokens, "failed": failed}
        if self.decode_on_worker:
            h, w = self.pp["size"]
            out["images"] = torch.stack(images) if images else torch.zeros((0, 3, h, w), dtype=torch.uint8)
        else:
            joined = b"".join(blobs)
            out["raw"] = torch.frombuffer(bytearray(joined), dtype=torch.uint8) if joined \
                else torch.zeros(0, dtype=torch.uint8)
            out["raw_sizes"] = torch.tensor([len(b) for b in blobs], dtype=torch.long)
            out["raw_is_jpeg"] = torch.tensor([b[:2] == b"\xff\xd8" for b in blobs], dtype=torch.bool)
        return out


def resize_crop_batch(images: Sequence[torch.Tensor], pp: dict[str, Any]) -> list[torch.Tensor]:
    """resize_crop over many images with one resize call per distinct input shape (the download
    stage writes few shapes), instead of one call per image."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(images)
    for idx in groups.values():
        crops = resize_crop(torch.stack([images[i] for i in idx]), pp) if len(idx) > 1 \
            else resize_crop(images[idx[0]], pp)[None]
        for i, c in zip(idx, crops):
            out[i] = c
    return out  # type: ignore[return-value]


def decode_batch_on_device(raw: torch.Tensor, sizes: torch.Tensor, is_jpeg: torch.Tensor,
                           pp: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Packed file bytes -> uint8 NCHW crops on `device` (nvJPEG, batched, on CUDA); (crops, bad indices).

    Non-JPEG or corrupt members fall back to CPU decode one by one; those that still fail are bad.
    """
    h, w = pp["size"]
    blobs = list(torch.split(raw, sizes.tolist())) if len(sizes) else []
    decoded: list[torch.Tensor | None] = [None] * len(blobs)
    jpeg_idx = torch.nonzero(is_jpeg).flatten().tolist()
    if jpeg_idx:
        try:
            outs = decode_jpeg([blobs[i] for i in jpeg_idx], mode=ImageReadMode.RGB, device=device)
            for i, t in zip(jpeg_idx, outs):
                decoded[i] = t
        except RuntimeError:
            for i in jpeg_idx:
                try:
                    decoded[i] = decode_jpeg(blobs[i], mode=ImageReadMode.RGB, device=device)
                except RuntimeError:
                    pass
    bad: list[int] = []
    for i, d in enumerate(decoded):
        if d is None:
            try:
                decoded[i] = decode_cpu(blobs[i]).to(device, non_blocking=True)
            except Exception:
                bad.append(i)
    good = [d for d in decoded if d is not None]
    if not good:
        return torch.zeros((0, 3, h, w), dtype=torch.uint8, device=device), bad
    return torch.stack(resize_crop_batch(good, pp)), bad


def _identity(x: Any) -> Any:
    return x


def make_loader(dataset: ShardBatches, num_workers: int, prefetch_factor: int, pin_memory: bool,
                timeout_s: float = 0.0) -> torch.utils.data.DataLoader:
    """A DataLoader over whole batches. With workers, `timeout_s` bounds the wait for any one batch:
    a worker that hangs raises instead of blocking the shard forever (a dead one is detected by
    torch's SIGCHLD handler / liveness poll)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        # Linux's default "file_descriptor" strategy hands each shared tensor over through a
        # connection to the sending worker: a worker that stops after queueing a batch blocks the
        # receiver in recv() forever, beyond the DataLoader timeout, and every tensor in flight holds
        # a descriptor. "file_system" passes shared-memory names (torch_shm_manager cleans up after
        # dead processes), so receiving never waits on a worker and holds no descriptors.
        torch.multiprocessing.set_sharing_strategy("file_system")
        kwargs["prefetch_factor"] = prefetch_factor
        kwargs["timeout"] = timeout_s
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=pin_memory,
        collate_fn=_identity, **kwargs,
    )
