"""Input pipeline: WebDataset tar members -> decoded, resized uint8 crops + caption tokens, in workers.

The tars are indexed once in the parent (member -> byte offset), so workers read each image with one
`os.pread` and no tar parsing. Workers decode (libjpeg-turbo via torchvision), resize and crop to the
model's input size, and tokenize captions; they ship uint8 crops (4x smaller than float) that the
main process pins, copies `non_blocking` and normalizes on the device. With decode on the device the workers
ship raw JPEG bytes instead and the GPU decodes them (nvJPEG) with the same resize/crop code.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
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
    offset: int
    size: int
    text: str | None
    reason: str | None = None


def index_tar(path: Path) -> dict[str, tuple[int, int]]:
    """member name -> (data offset, size); one pass over the tar headers."""
    out: dict[str, tuple[int, int]] = {}
    with tarfile.open(path, "r:") as tf:
        for m in tf:
            if m.isfile():
                out[m.name] = (m.offset_data, m.size)
    return out


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


def decode_cpu(data: bytes | torch.Tensor) -> torch.Tensor:
    """Bytes -> uint8 RGB CHW; JPEG via libjpeg-turbo, other formats via torchvision, then PIL."""
    buf = data if isinstance(data, torch.Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        if len(buf) >= 2 and int(buf[0]) == 0xFF and int(buf[1]) == 0xD8:
            return decode_jpeg(buf, mode=ImageReadMode.RGB)
        return decode_image(buf, mode=ImageReadMode.RGB)
    except RuntimeError:
        from PIL import Image

        with Image.open(io.BytesIO(buf.numpy().tobytes())) as im:
            arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
            return arr.view(im.height, im.width, 3).permute(2, 0, 1).contiguous()


def normalize(batch_u8: torch.Tensor, pp: dict[str, Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NCHW (on the device) -> normalized float, as ToTensor + Normalize would give."""
    mean = torch.tensor(pp["mean"], device=batch_u8.device, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pp["std"], device=batch_u8.device, dtype=torch.float32).view(1, -1, 1, 1)
    return ((batch_u8.float() / 255.0 - mean) / std).to(dtype)


class ShardBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item i is the whole batch i, so a worker builds a batch end to end."""

    def __init__(self, batches: Sequence[Sequence[Item]], pp: dict[str, Any],
                 tokenizer: Callable[..., torch.Tensor], decode_on_worker: bool):
        self.batches = batches
        self.pp = pp
        self.tokenizer = tokenizer
        self.decode_on_worker = decode_on_worker
        self._fds: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.batches)

    def _read(self, item: Item) -> bytes:
        fd = self._fds.get(item.tar)
        if fd is None:
            fd = self._fds[item.tar] = os.open(item.tar, os.O_RDONLY)
        return os.pread(fd, item.size, item.offset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pos: list[int] = []
        images: list[torch.Tensor] = []
        texts: list[str] = []
        failed: list[tuple[int, str]] = []
        for item in self.batches[i]:
            if item.reason is not None:
                failed.append((item.pos, item.reason))
                continue
            try:
                data = self._read(item)
            except OSError:
                failed.append((item.pos, "missing_member"))
                continue
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            if self.decode_on_worker:
                try:
                    img = resize_crop(decode_cpu(raw), self.pp)
                except Exception:  # any decoder error means this one image is unusable
                    failed.append((item.pos, "undecodable_image"))
                    continue
            else:
                img = raw  # decoded on the GPU by the consumer
            pos.append(item.pos)
            images.append(img)
            texts.append(item.text or "")
        tokens = self.tokenizer(texts) if texts else torch.zeros((0, 1), dtype=torch.long)
        out: dict[str, Any] = {
            "pos": torch.tensor(pos, dtype=torch.long),
            "tokens": tokens,
            "failed": failed,
        }
        if self.decode_on_worker:
            h, w = self.pp["size"]
            out["images"] = torch.stack(images) if images else torch.zeros((0, 3, h, w), dtype=torch.uint8)
        else:
            out["raw"] = images
        return out


def decode_batch_on_device(raw: list[torch.Tensor], pp: dict[str, Any], device: torch.device
                      ) -> tuple[torch.Tensor, list[int]]:
    """Raw JPEG bytes -> uint8 NCHW crops on `device` (nvJPEG, batched, on CUDA); (crops, bad indices).

    Non-JPEG or corrupt members fall back to CPU decode one by one; those that still fail are bad.
    """
    h, w = pp["size"]
    crops: list[torch.Tensor | None] = [None] * len(raw)
    is_jpeg = [len(r) >= 2 and int(r[0]) == 0xFF and int(r[1]) == 0xD8 for r in raw]
    jpeg_idx = [i for i, j in enumerate(is_jpeg) if j]
    decoded: list[torch.Tensor | None] = [None] * len(raw)
    if jpeg_idx:
        try:
            outs = decode_jpeg([raw[i] for i in jpeg_idx], mode=ImageReadMode.RGB, device=device)
            for i, t in zip(jpeg_idx, outs):
                decoded[i] = t
        except RuntimeError:
            for i in jpeg_idx:
                try:
                    decoded[i] = decode_jpeg(raw[i], mode=ImageReadMode.RGB, device=device)
                except RuntimeError:
                    pass
    bad: list[int] = []
    for i in range(len(raw)):
        if decoded[i] is None:
            try:
                decoded[i] = decode_cpu(raw[i]).to(device, non_blocking=True)
            except Exception:
                bad.append(i)
                continue
        crops[i] = resize_crop(decoded[i], pp)
    good = [c for c in crops if c is not None]
    batch = torch.stack(good) if good else torch.zeros((0, 3, h, w), dtype=torch.uint8, device=device)
    return batch, bad


def _identity(x: Any) -> Any:
    return x


def make_loader(dataset: ShardBatches, num_workers: int, prefetch_factor: int, pin_memory: bool
                ) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=_identity,
            **kwargs,
        )
    )
