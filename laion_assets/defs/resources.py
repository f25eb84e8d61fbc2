"""Resources: configuration and long-lived clients the assets share."""

import contextlib
import difflib
import importlib.util
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr, field_validator

from laion_assets.core.storage import LocalStorage
from laion_assets.core.cpus import available_cpus
from laion_assets.core.validation import ConfigError


class StorageResource(dg.ConfigurableResource):
    """The storage root every stage reads and writes (a local directory in the embedded default)."""

    root: str

    def get(self) -> LocalStorage:
        return LocalStorage(self.root)


class CrawlSourceResource(dg.ConfigurableResource):
    """Which crawl `crawl_manifest` lists by default, where its WARC files are, and K per shard."""

    crawl: str
    source_dir: str
    files_per_shard: int = 10


class DownloaderResource(dg.ConfigurableResource):
    """Download settings; `options` takes any other `DownloadConfig` field by name."""

    allow_private_hosts: list[str] = []
    user_agent_token: str = "laion-assets"
    options: dict[str, Any] = {}

    def config(self) -> Any:
        from laion_assets.core.download import DownloadConfig

        return DownloadConfig(
            allow_private_hosts=tuple(self.allow_private_hosts),
            user_agent_token=self.user_agent_token,
            **self.options,
        )


def known_clip_models() -> set[str]:
    """open_clip's model names read from its packaged config files (what `open_clip.list_models()`
    lists) plus the project's tiny model, without importing open_clip or torch at definitions load."""
    from laion_assets.models import TINY_MODEL_NAME

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


class ClipModelResource(dg.ConfigurableResource):
    """An open_clip model loaded once per process, shared by every shard the process scores."""

    model_name: str
    pretrained: str
    device: str = "auto"
    batch_size: int | None = None
    options: dict[str, Any] = {}

    _scorer: Any = PrivateAttr(default=None)

    @field_validator("model_name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return require_clip_model(value)

    def scorer(self) -> Any:
        if self._scorer is None:
            from laion_assets.core.clip import ClipConfig, ClipScorer
            from laion_assets.models import register_tiny_model

            register_tiny_model()
            self._scorer = ClipScorer(
                ClipConfig(
                    model_name=self.model_name,
                    pretrained=self.pretrained,
                    device=self.device,
                    batch_size=self.batch_size,
                    **self.options,
                )
            )
            self._scorer.load()
            if self._scorer.loaded.device.type == "cpu":
                # Decode workers take their cores; more torch threads than the rest only contend.
                import torch

                torch.set_num_threads(max(1, available_cpus() - self._scorer.num_workers))
        return self._scorer


def _serves_sample(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/robots.txt", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class SampleImageServerResource(dg.ConfigurableResource):
    """Serves the sample crawl's images on 127.0.0.1 while a download step runs (embedded default).

    If another process (a parallel step, or the demo command) already serves them on the port, that
    server is reused.
    """

    enabled: bool = False
    root: str = ""
    port: int = 18765

    _stack: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.enabled:
            return
        from laion_assets.core.sample_crawl import serve_directory

        images = Path(self.root) / "sample-crawl" / "images"
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(serve_directory(images, port=self.port))
        except OSError as exc:
            if not _serves_sample(self.port):
                raise RuntimeError(
                    f"port {self.port} is busy and does not serve the sample crawl's images; "
                    "set LAION_SAMPLE_IMAGE_PORT to a free port and re-materialize sample_crawl"
                ) from exc
        self._stack = stack

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
