"""Resources: configuration and long-lived clients the assets share."""

import contextlib
import difflib
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr, field_validator, model_validator

from dagster_aws.s3 import S3Resource

from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.storage.local import LocalStorage, Storage
from laion_assets.core.storage.s3 import S3Credentials, S3Storage, parse_s3_uri
from laion_assets.core.lib.validation import ConfigError, require_int_range
from laion_assets.defs.lib.validators import ranged


def s3_credentials(s3: S3Resource) -> S3Credentials:
    """The S3Resource's settings for clients other than boto3 (pyarrow, DuckDB); never logged."""
    return S3Credentials(
        endpoint_url=s3.endpoint_url,
        region=s3.region_name,
        access_key_id=s3.aws_access_key_id,
        secret_access_key=s3.aws_secret_access_key,
        session_token=s3.aws_session_token,
        anonymous=s3.use_unsigned_session,
    )


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
    """The storage root every stage reads and writes: a local directory, or `s3://bucket/prefix`
    through dagster-aws's `S3Resource` (credentials from `EnvVar`s, `LAION_S3_ENDPOINT_URL` for
    MinIO or moto). `cache_dir` holds local copies of S3 directories that readers need as files."""

    root: str
    s3: S3Resource | None = None  # None: boto3's default credential chain
    cache_dir: str = ""

    @field_validator("root")
    @classmethod
    def _check_root_characters(cls, root: str) -> str:
        from laion_assets.settings import check_storage_root

        return check_storage_root(root) if isinstance(root, str) else root  # named as users set it

    @model_validator(mode="after")
    def _check_root(self):
        if isinstance(self.root, str) and self.root.startswith("s3://"):
            try:
                parse_s3_uri(self.root)
            except ValueError:
                raise ConfigError("LAION_ASSETS_ROOT", self.root, "must be s3://bucket[/prefix] or a local directory") from None
        return self

    def get(self) -> Storage:
        if self.root.startswith("s3://"):
            s3 = self.s3 or S3Resource()
            return S3Storage(
                self.root,
                s3.get_client(),
                credentials=s3_credentials(s3),
                cache_dir=self.cache_dir or None,
            )
        return LocalStorage(self.root)


class CrawlSourceResource(dg.ConfigurableResource):
    """Which crawl `crawl_manifest` lists by default, where its WARC files are, and K per shard.

    `source_dir`: a local directory, an `s3://` prefix of WARC files, or a Common Crawl listing
    (`.../crawl-data/CC-MAIN-YYYY-WW/warc.paths.gz` on `s3://commoncrawl/` or
    `https://data.commoncrawl.org/`). `s3` reads S3 sources other than the storage root's bucket
    (`use_unsigned_session=True` for Common Crawl's public bucket). `max_files` (0: all) caps the
    listing, e.g. to try a few WARCs of a 90k-file crawl."""

    crawl: str
    source_dir: str
    files_per_shard: int = 10
    max_files: int = 0
    s3: S3Resource | None = None  # None: anonymous (Common Crawl's public bucket)
    # crawl discovery (crawl_discovery_sensor): where to look, and which crawls it may register
    discovery_root: str = ""
    discover_only: list[str] = []
    discover_newer_than: str = ""
    discover_max_crawls_per_tick: int = 1
    discover_listing: str = "warc.paths.gz"  # or "wat.paths.gz": extract from WAT metadata instead

    @model_validator(mode="after")
    def _check_listing(self):
        if self.discover_listing not in ("warc.paths.gz", "wat.paths.gz"):
            raise ConfigError("crawl_source.discover_listing", self.discover_listing, "must be warc.paths.gz or wat.paths.gz")
        return self

    @model_validator(mode="after")
    def _check_counts(self):
        for name, lo in (("files_per_shard", 1), ("max_files", 0), ("discover_max_crawls_per_tick", 1)):
            value = getattr(self, name)
            if isinstance(value, int):  # an EnvVar is checked once resolved
                require_int_range(f"crawl_source.{name}", value, lo)
        return self

    @field_validator("crawl")
    @classmethod
    def _check_crawl(cls, crawl: str) -> str:
        from laion_assets.settings import check_crawl_name

        return check_crawl_name(crawl, "crawl_source.crawl") if isinstance(crawl, str) and crawl else crawl

    def s3_client(self):
        return (self.s3 or S3Resource(use_unsigned_session=True)).get_client()

    def select(self, names: list[str]) -> list[str]:
        from laion_assets.core.crawl.manifest import select_crawls

        return select_crawls(names, newer_than=self.discover_newer_than, only=self.discover_only)


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


class SampleImageServerResource(dg.ConfigurableResource):
    """Serves the sample crawl's images on 127.0.0.1 while a step that needs them runs (embedded).

    The server is a small process of its own shared by every step on the port the sample's pages
    name (`core/sample/server.py`): each step holds a lease on it for its whole duration and checks
    by content (a token written with the sample) that the server is this root's, so parallel shard
    runs and backfills never lose it mid-download nor read another root's images.
    """

    enabled: bool = False
    root: str = ""
    port: int = Field(
        default=18765, description="port the sample's image URLs name when sample_crawl builds it; 0 = a free port"
    )
    idle_exit_s: float = Field(default=5.0, description="the server exits after this long with no step using it")

    storage: StorageResource | None = None  # where the sample crawl is (else a local `root`)

    _check_port = ranged("port", 0, 65535, integer=True)
    _check_idle = ranged("idle_exit_s", 0, 3600, lo_open=True)

    _lease: Any = PrivateAttr(default=None)

    def _local_sample(self) -> tuple[Path, Path] | None:
        """(the sample directory the server reads, its lease file); None before the sample exists.

        A local root: the committed directory itself (the server follows its `_CURRENT` per
        request). An S3 root: the storage's local cache copy of the live version.
        """
        st = self.storage.get() if self.storage is not None else LocalStorage(self.root)
        if st.live_version("sample-crawl") is None:
            return None
        d = st.path("sample-crawl") if isinstance(st, LocalStorage) else st.local_dir("sample-crawl")
        return d, d.parent / f"{d.name}.server-lease"

    def recorded_port(self) -> int | None:
        """The port the built sample's pages name (its spec.json), None before it is built."""
        from laion_assets.core.sample.server import recorded_port

        where = self._local_sample()
        return None if where is None else recorded_port(where[0])

    def build_port(self) -> int:
        """The port a (re)build of the sample names: the setting, else the recorded or a free one."""
        from laion_assets.core.sample.server import free_port

        return self.port or self.recorded_port() or free_port()

    def lease(self) -> contextlib.AbstractContextManager:
        """Hold the sample's server up (starting it if needed) and verified for the block."""
        from laion_assets.core.sample.server import SampleServerError, lease_sample_server, recorded_port

        where = self._local_sample()
        port = None if where is None else recorded_port(where[0])
        if where is None or port is None:
            raise SampleServerError(f"no sample crawl under {self.root}: materialize sample_crawl first")
        return lease_sample_server(where[0], port, where[1], idle_exit_s=self.idle_exit_s)

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
