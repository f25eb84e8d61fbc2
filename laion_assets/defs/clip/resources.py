"""`clip_model`: the open_clip model, loaded once per process and shared by every shard it scores."""

import difflib
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr, field_validator, model_validator

from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.lib.validation import ConfigError
from laion_assets.defs.lib.validators import build_checked, ranged


def known_clip_models() -> set[str]:
    """open_clip's model names read from its packaged config files (what `open_clip.list_models()`
    lists) plus the project's tiny model, without importing open_clip or torch at definitions load."""
    from laion_assets.weights import TINY_MODEL_NAME

    spec = importlib.util.find_spec("open_clip")
    configs = Path(spec.origin).parent / "model_configs" if spec and spec.origin else None
    names = {p.stem for p in configs.glob("*.json")} if configs and configs.is_dir() else set()
    return names | {TINY_MODEL_NAME}


def require_clip_model(name: str) -> str:
    """Fail at definitions load (not after extract and download ran) on a model open_clip lacks."""
    if name.startswith(("hf-hub:", "local-dir:")):
        return name
    known = known_clip_models()
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError("LAION_CLIP_MODEL", name,
                          f"an open_clip model name ({len(known)} known, e.g. ViT-B-32), "
                          f"`hf-hub:<repo>` or `local-dir:<path>`{hint}")
    return name


# Loaded scorers by configuration, shared by every ClipModelResource instance of the process: Dagster
# builds resources per run (and per step under the multiprocess executor), and a model load costs
# seconds (docs/clip.md "Per-shard setup"); runs that share a process pay it once.
_SCORERS: dict[str, Any] = {}
_SCORERS_LOCK = threading.Lock()


class ClipModelResource(dg.ConfigurableResource):
    """An open_clip model loaded once per process, shared by every shard the process scores."""

    model_name: str
    pretrained: str
    device: str = "auto"
    batch_size: int | None = None
    options: dict[str, Any] = {}

    _scorer: Any = PrivateAttr(default=None)
    _check_batch_size = ranged("batch_size", 1, 1 << 20, integer=True)

    @model_validator(mode="after")
    def _check_config(self) -> "ClipModelResource":
        build_checked("clip_model.options", self.clip_config)
        return self

    def clip_config(self) -> Any:
        from laion_assets.core.clip.config import ClipConfig

        return ClipConfig(
            model_name=self.model_name,
            pretrained=self.pretrained,
            device=self.device,
            batch_size=self.batch_size,
            **self.options,
        )

    @field_validator("model_name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return require_clip_model(value)

    def _cache_key(self) -> str:
        return json.dumps([self.model_name, self.pretrained, self.device, self.batch_size, self.options],
                          sort_keys=True, default=str)

    def scorer(self) -> Any:
        if self._scorer is None:
            with _SCORERS_LOCK:
                key = self._cache_key()
                if key not in _SCORERS:
                    _SCORERS[key] = self._load()
                self._scorer = _SCORERS[key]
        return self._scorer

    def _load(self) -> Any:
        from laion_assets.core.clip import ClipScorer
        from laion_assets.weights import register_tiny_model

        register_tiny_model()
        scorer = ClipScorer(self.clip_config())
        scorer.load()
        if scorer.loaded.device.type == "cpu":
            # Decode workers take their cores; more torch threads than the rest only contend.
            import torch

            torch.set_num_threads(max(1, available_cpus() - scorer.num_workers))
        return scorer
