"""`sample_image_server`: the embedded sample's images served on 127.0.0.1 while a step needs them."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from laion_assets.core.storage import open_storage
from laion_assets.core.storage.layout import SAMPLE_CRAWL_DIR
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.lib.validators import ranged


class SampleImageServerResource(dg.ConfigurableResource):
    """Serves the sample crawl's images on 127.0.0.1 while a step that needs them runs (embedded).

    The server is a small process of its own shared by every step on the port the sample's pages
    name (`core/sample/server.py`): each step holds a lease on it for its whole duration and checks
    by content (a token written with the sample) that the server is this root's, so parallel shard
    runs and backfills never lose it mid-download nor read another root's images.
    """

    enabled: bool = False
    root: str = ""
    port: int | None = Field(
        default=None,
        description="port the sample's image URLs name when sample_crawl builds it: None = chosen per root "
        "and reserved on this host (18765 when free), 0 = a fresh free port at every build, N = exactly N",
    )
    preferred_port: int = Field(default=18765, description="the port an unset `port` takes when free and unreserved")
    port_registry_dir: str = Field(
        default="", description="the host's sample port reservations ('' = a per-user directory in the temp dir)"
    )
    idle_exit_s: float = Field(default=5.0, description="the server exits after this long with no step using it")

    storage: StorageResource | None = None  # where the sample crawl is (else a local `root`)

    _check_port = ranged("port", 0, 65535, integer=True)
    _check_preferred_port = ranged("preferred_port", 1, 65535, integer=True)
    _check_idle = ranged("idle_exit_s", 0, 3600, lo_open=True)

    _lease: Any = PrivateAttr(default=None)
    _setup_error: Any = PrivateAttr(default=None)

    def require_served(self) -> None:
        """Raise what kept the sample's server from being leased for this step (nothing if it is up)."""
        if self._setup_error is not None:
            raise self._setup_error

    def _local_sample(self) -> tuple[Path, Path] | None:
        """(the sample directory the server reads, its lease file); None before the sample exists.

        A local root: the committed directory itself (the server follows its `_CURRENT` per
        request). An S3 root: the storage's local cache copy of the live version.
        """
        st = self.storage.get() if self.storage is not None else open_storage(self.root)
        if st.live_version(SAMPLE_CRAWL_DIR) is None:
            return None
        d = st.live_dir(SAMPLE_CRAWL_DIR)
        return d, d.parent / f"{d.name}.server-lease"

    def recorded_port(self) -> int | None:
        """The port the built sample's pages name (its spec.json), None before it is built."""
        from laion_assets.core.sample.server import recorded_port

        where = self._local_sample()
        return None if where is None else recorded_port(where[0])

    def _owner(self) -> str:
        """Who a port reservation belongs to: the storage URI of this root's sample directory."""
        st = self.storage.get() if self.storage is not None else open_storage(self.root)
        return st.uri(SAMPLE_CRAWL_DIR)

    @contextlib.contextmanager
    def build_port(self) -> Iterator[int]:
        """The port a (re)build of the sample names, reserved for this root once the block (the build
        and its commit) ends; the host's registry is locked meanwhile (`core/sample/ports.py`)."""
        from laion_assets.core.sample.ports import PortRegistry, choose_build_port
        from laion_assets.core.sample.server import live_images_dir, read_token, served_token

        registry, owner = PortRegistry(self.port_registry_dir or None), self._owner()
        with registry.locked():
            recorded = self.recorded_port()
            own = False
            if recorded is not None:  # its server is up on the recorded port: that port is in use by us
                token = read_token(live_images_dir(self._local_sample()[0]))
                own = token is not None and served_token(recorded) == token
            port = choose_build_port(
                self.port, owner, recorded, registry, serves_own_sample=own, preferred=self.preferred_port
            )
            yield port
            where = self._local_sample()
            if where is not None and self.recorded_port() == port:
                registry.reserve(port, owner, where[0])

    def lease(self) -> contextlib.AbstractContextManager:
        """Hold the sample's server up (starting it if needed) and verified for the block."""
        from laion_assets.core.sample.ports import PortRegistry
        from laion_assets.core.sample.server import SampleServerError, lease_sample_server, recorded_port

        where = self._local_sample()
        port = None if where is None else recorded_port(where[0])
        if where is None or port is None:
            raise SampleServerError(f"no sample crawl under {self.root}: materialize sample_crawl first")
        registry, owner = PortRegistry(self.port_registry_dir or None), self._owner()
        with registry.locked():
            other = registry.holder_other_than(port, owner)
            if other is not None:
                raise SampleServerError(
                    f"port {port}, which this root's sample crawl names, is reserved by the sample crawl of "
                    f"{other.owner}: re-materialize sample_crawl here with LAION_SAMPLE_IMAGE_PORT unset "
                    "(a port is chosen for this root) or 0"
                )
            if registry.live(port) is None:  # a sample built before reservations existed
                registry.reserve(port, owner, where[0])
        return lease_sample_server(where[0], port, where[1], idle_exit_s=self.idle_exit_s)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.enabled or self.recorded_port() is None:
            return  # production, or sample_crawl itself before its first build
        from laion_assets.core.sample.server import SampleServerError

        stack = contextlib.ExitStack()
        try:
            lease = stack.enter_context(self.lease())
        except SampleServerError as exc:
            # Not raised here: `sample_crawl` must still be able to rebuild a sample whose recorded port
            # is no longer usable (a failed build's). A step that needs the images calls `require_served`.
            self._setup_error = exc
            if context.log is not None:
                context.log.warning(f"sample image server: {exc}")
            return
        if context.log is not None:
            how = "started" if lease.started_server else "verified the running"
            context.log.info(f"sample image server: {how} server on {lease.base_url}")
        self._lease = stack

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None
