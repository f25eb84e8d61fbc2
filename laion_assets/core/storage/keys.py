"""Partition keys '<crawl>/<shard>': validated where they are made and where they are read.

Both parts become path segments under the storage root, so a crawl is a strict name (never '.' or
'..', no separators) and a shard is digits only.
"""

from __future__ import annotations

import re

_CRAWL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_SHARD_RE = re.compile(r"[0-9]{1,12}", re.ASCII)


def validate_crawl_name(crawl: str) -> str:
    """A crawl name is a path segment: letters, digits, '.', '_', '-', never '.' or '..'."""
    if not isinstance(crawl, str) or not _CRAWL_RE.fullmatch(crawl) or crawl in (".", ".."):
        raise ValueError(
            f"crawl name {crawl!r} must be 1-64 characters of ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'CC-MAIN-2024-22'); it becomes part of "
            "partition keys and storage paths"
        )
    return crawl


def validate_shard_name(shard: str) -> str:
    if not isinstance(shard, str) or not _SHARD_RE.fullmatch(shard):
        raise ValueError(f"shard {shard!r} must be 1-12 ASCII digits (for example '00042')")
    return shard


def make_partition_key(crawl: str, shard: str) -> str:
    return f"{validate_crawl_name(crawl)}/{validate_shard_name(shard)}"


def split_partition_key(partition_key: str) -> tuple[str, str]:
    """'CC-MAIN-2024-22/00042' -> ('CC-MAIN-2024-22', '00042'); anything else is refused."""
    if not isinstance(partition_key, str) or partition_key.count("/") != 1:
        raise ValueError(f"partition key {partition_key!r} is not '<crawl>/<shard>'")
    crawl, shard = partition_key.split("/")
    try:
        validate_crawl_name(crawl)
        validate_shard_name(shard)
    except ValueError as exc:
        raise ValueError(f"partition key {partition_key!r} is not '<crawl>/<shard>': {exc}") from None
    return crawl, shard
