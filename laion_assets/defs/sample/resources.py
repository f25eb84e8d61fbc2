"""`sample_image_server`: the embedded sample's images served on 127.0.0.1 while a step needs them."""

import contextlib
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
