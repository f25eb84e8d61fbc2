"""Image download core (pure Python, no Dagster): fetch, opt-out policy, SSRF guard, resize, tar.

    from laion_assets.core.download import DownloadConfig, DownloadResult, download_shard, \
        list_tar_members, REASONS
"""

from .config import RESIZE_MODES, DownloadConfig
from .shard import DownloadResult, download_shard
from .status import REASON_INFO, REASONS, STATUSES
from .writer import TAR_MEMBERS_SCHEMA, list_tar_members

__all__ = [
    "REASONS",
    "REASON_INFO",
    "RESIZE_MODES",
    "STATUSES",
    "TAR_MEMBERS_SCHEMA",
    "DownloadConfig",
    "DownloadResult",
    "download_shard",
    "list_tar_members",
]
