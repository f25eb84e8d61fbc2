"""Resources: configuration and long-lived clients the assets share."""

import contextlib
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr, field_validator, model_validator

from laion_assets.core.cpus import available_cpus
from laion_assets.core.storage import LocalStorage
from laion_assets.core.validation import ConfigError
from laion_assets.defs.config_checks import ranged


def _build_checked(setting: str, build: Any) -> Any:
    """Call `build`; an unknown option name or a core ValueError becomes one ConfigError naming it."""
    try:
        return build()
    except ConfigError:
        raise
    except TypeError as exc:  # an option the core config has no field for
        raise ValueError(f"{setting}: {str(exc).split('got ')[-1]} (not a setting of this stage)") from None
    except ValueError as exc:
        raise ValueError(f"{setting}: {exc}") from None


class StorageResource(dg.ConfigurableResource):
    """The storage root every stage reads and writes (a local directory in the embedded default)."""

    root: str

    @field_validator("root")
    @classmethod
    def _check_root(cls, root: str) -> str:
        from laion_assets.settings import check_storage_root

        return check_storage_root(root, "storage.root")

    def get(self) -> LocalStorage:
        return LocalStorage(self.root)


class CrawlSourceResource(dg.ConfigurableResource):
    """Which crawl `crawl_manifest` lists by default, where its WARC files are, and K per shard."""

    crawl: str
    source_dir: str
    files_per_shard: int = 10

    _check_files_per_shard = ranged("files_per_shard", 1, 100_000, integer=True)

    @field_validator("crawl")
    @classmethod
    def _check_crawl(cls, crawl: str) -> str:
        from laion_assets.settings import check_crawl_name

        return check_crawl_name(crawl, "crawl_source.crawl") if crawl else crawl


class DownloaderResource(dg.ConfigurableResource):
    """Download settings; `options` takes any other `DownloadConfig` field by name."""

    allow_private_hosts: list[str] = []
    user_agent_token: str = "laion-assets"
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check_config(self) -> "DownloaderResource":
        """Build the DownloadConfig now, so a bad option fails at load, not mid-shard."""
        from laion_assets.core.download.netguard import parse_allow_list

        parse_allow_list(self.allow_private_hosts, "downloader.allow_private_hosts")
        _build_checked("downloader.options", self.config)
        return self

    def config(self) -> Any:
        from laion_assets.core.download import DownloadConfig

        return DownloadConfig(
            allow_private_hosts=tuple(self.allow_private_hosts),
            user_agent_token=self.user_agent_token,
            **self.options,
        )


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
        _build_checked("clip_model.options", self.clip_config)
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

    def scorer(self) -> Any:
        if self._scorer is None:
            from laion_assets.core.clip import ClipScorer
            from laion_assets.models import register_tiny_model

            register_tiny_model()
            self._scorer = ClipScorer(self.clip_config())
            self._scorer.load()
            if self._scorer.loaded.device.type == "cpu":
                # Decode workers take their cores; more torch threads than the rest only contend.
                import torch

                torch.set_num_threads(max(1, available_cpus() - self._scorer.num_workers))
        return self._scorer


class SampleImageServerResource(dg.ConfigurableResource):
    """Serves the sample crawl's images on 127.0.0.1 while a step that needs them runs (embedded).

    The server is a small process of its own shared by every step on the port the sample's pages
    name (`core/sample_server.py`): each step holds a lease on it for its whole duration and checks
    by content (a token written with the sample) that the server is this root's, so parallel shard
    runs and backfills never lose it mid-download nor read another root's images.
    """

    enabled: bool = False
    root: str = ""
    port: int = Field(
        default=18765, description="port the sample's image URLs name when sample_crawl builds it; 0 = a free port"
    )
    idle_exit_s: float = Field(default=5.0, description="the server exits after this long with no step using it")

    _check_port = ranged("port", 0, 65535, integer=True)
    _check_idle = ranged("idle_exit_s", 0, 3600, lo_open=True)

    _lease: Any = PrivateAttr(default=None)

    @property
    def sample_dir(self) -> Path:
        return Path(self.root) / "sample-crawl"

    @property
    def lease_path(self) -> Path:
        return Path(self.root) / "sample-crawl.server-lease"

    def recorded_port(self) -> int | None:
        """The port the built sample's pages name (its spec.json), None before it is built."""
        from laion_assets.core.sample_server import recorded_port

        return recorded_port(self.sample_dir)

    def build_port(self) -> int:
        """The port a (re)build of the sample names: the setting, else the recorded or a free one."""
        from laion_assets.core.sample_server import free_port

        return self.port or self.recorded_port() or free_port()

    def lease(self) -> contextlib.AbstractContextManager:
        """Hold the sample's server up (starting it if needed) and verified for the block."""
        from laion_assets.core.sample_server import SampleServerError, lease_sample_server

        port = self.recorded_port()
        if port is None:
            raise SampleServerError(f"no sample crawl under {self.sample_dir}: materialize sample_crawl first")
        return lease_sample_server(self.sample_dir, port, self.lease_path, idle_exit_s=self.idle_exit_s)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.enabled or self.recorded_port() is None:
            return  # production, or sample_crawl itself before its first build
        stack = contextlib.ExitStack()
        lease = stack.enter_context(self.lease())
        if context.log is not None:
            how = "started" if lease.started_server else "verified the running"
            context.log.info(f"sample image server: {how} server on {lease.base_url}")
        self._lease = stack

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None
