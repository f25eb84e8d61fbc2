"""Loading an open_clip model once per process, and running it with OOM-splitting batches.

The same code runs on CUDA (autocast fp16/bf16, inference_mode, non_blocking copies) and on CPU;
only the device and autocast dtype differ.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from laion_assets.core.clip.config import ClipConfig
from laion_assets.core.lib.ids import file_sha256


class MemoryBudgetExceeded(RuntimeError):
    """A batch's device tensors exceed ClipConfig.max_batch_bytes; handled like a CUDA OOM."""


OOM_ERRORS: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError, MemoryBudgetExceeded)


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means plain fp32; otherwise the autocast dtype."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # CPU autocast is usually slower than fp32 and changes scores for no gain


def default_batch_size(device: torch.device) -> int:
    """A batch that fits a B/32-sized model with room to spare; the OOM split is the backstop."""
    if device.type == "cuda":
        total_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        return 1024 if total_gib >= 40 else 512 if total_gib >= 16 else 128
    if device.type == "mps":
        return 64
    return 32


def weights_identity(pretrained: str | None, seed: int) -> tuple[str, str]:
    """(label for model_id, weights_id): sha256 of a local file, else the tag, else the init seed."""
    if pretrained is None or pretrained == "":
        return "random", f"random-init:seed={seed}"
    p = Path(os.path.expanduser(pretrained))
    if p.is_file():
        return p.name, "sha256:" + file_sha256(p)
    return pretrained, pretrained


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Callable[..., torch.Tensor]
    preprocess: Callable[[Any], torch.Tensor]  # open_clip's PIL transform (used by the plain baseline)
    preprocess_cfg: dict[str, Any]
    device: torch.device
    autocast_dtype: torch.dtype | None
    model_id: str
    weights_id: str
    logit_scale: float

    @property
    def dtype_name(self) -> str:
        return "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def load_model(config: ClipConfig) -> LoadedModel:
    import open_clip

    device = resolve_device(config.device)
    label, weights_id = weights_identity(config.pretrained, config.seed)
    if config.pretrained in (None, ""):
        torch.manual_seed(config.seed)  # random weights are reproducible within the bench
    pretrained = config.pretrained or None
    if pretrained is not None and Path(os.path.expanduser(pretrained)).is_file():
        pretrained = str(Path(os.path.expanduser(pretrained)))
    model, _, preprocess = open_clip.create_model_and_transforms(
        config.model_name, pretrained=pretrained, device=device, cache_dir=config.cache_dir
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(config.model_name)
    pp_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = pp_cfg.get("size", getattr(model.visual, "image_size", 224))
    pp_cfg["size"] = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    pp_cfg.setdefault("mean", tuple(getattr(model.visual, "image_mean", (0.48145466, 0.4578275, 0.40821073))))
    pp_cfg.setdefault("std", tuple(getattr(model.visual, "image_std", (0.26862954, 0.26130258, 0.27577711))))
    pp_cfg.setdefault("interpolation", "bicubic")
    pp_cfg.setdefault("resize_mode", "shortest")
    scale = getattr(model, "logit_scale", None)
    logit_scale = float(scale.exp().item()) if isinstance(scale, torch.Tensor) else 100.0
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        preprocess=preprocess,
        preprocess_cfg=pp_cfg,
        device=device,
        autocast_dtype=resolve_autocast_dtype(config.precision, device),
        model_id=f"{config.model_name}@{label}",
        weights_id=weights_id,
        logit_scale=logit_scale,
    )


class SplittingRunner:
    """Runs a forward over aligned batch tensors; on OOM (or budget excess) halves and retries.

    After a split, later batches are fed in chunks of the size that last fitted, so one OOM does not
    cost a failed forward on every following batch. A single row that still does not fit re-raises.
    """

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], max_batch_bytes: int | None,
                 device: torch.device):
        self.fn = fn
        self.max_batch_bytes = max_batch_bytes
        self.device = device
        self.oom_splits = 0
        self.chunk: int | None = None  # largest chunk known to fit, once an OOM happened

    def _check_budget(self, tensors: Sequence[torch.Tensor]) -> None:
        if self.max_batch_bytes is None:
            return
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        if nbytes > self.max_batch_bytes:
            raise MemoryBudgetExceeded(
                f"batch of {len(tensors[0])} needs {nbytes} bytes > max_batch_bytes={self.max_batch_bytes}"
            )

    def _run_once(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        self._check_budget(tensors)
        return self.fn(*tensors)

    def _run_split(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        n = len(tensors[0])
        try:
            return self._run_once(tensors)
        except OOM_ERRORS:
            if n <= 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.oom_splits += 1
            half = (n + 1) // 2
            self.chunk = half if self.chunk is None else min(self.chunk, half)
            first = self._run_split([t[:half] for t in tensors])
            second = self._run_split([t[half:] for t in tensors])
            return tuple(torch.cat([a, b]) for a, b in zip(first, second))

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(tensors[0])
        if self.chunk is None or n <= self.chunk:
            return self._run_split(tensors)
        parts = [self._run_split([t[i : i + self.chunk] for t in tensors]) for i in range(0, n, self.chunk)]
        return tuple(torch.cat(cols) for cols in zip(*parts))
