"""Resources: configuration and long-lived clients the assets share."""

import contextlib
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from laion_assets.core.storage import LocalStorage
from laion_assets.core.cpus import available_cpus


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
        from laion_assets.core.clip import ClipConfig, ClipScorer
        from laion_assets.models import register_tiny_model

        register_tiny_model()
        scorer = ClipScorer(
            ClipConfig(
                model_name=self.model_name,
                pretrained=self.pretrained,
                device=self.device,
                batch_size=self.batch_size,
                **self.options,
            )
        )
        scorer.load()
        if scorer.loaded.device.type == "cpu":
            # Decode workers take their cores; more torch threads than the rest only contend.
            import torch

            torch.set_num_threads(max(1, available_cpus() - scorer.num_workers))
        return scorer


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
