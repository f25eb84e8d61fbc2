"""`downloader`: the download stage's settings, checked when definitions load."""

from typing import Any

import dagster as dg
from pydantic import model_validator

from laion_assets.defs.lib.validators import build_checked


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
        build_checked("downloader.options", self.config)
        return self

    def config(self) -> Any:
        from laion_assets.core.download import DownloadConfig

        return DownloadConfig(
            allow_private_hosts=tuple(self.allow_private_hosts),
            user_agent_token=self.user_agent_token,
            **self.options,
        )
