"""WebDataset member keys that are unique across a crawl, and the map from a status row to its image.

Every shard's pairs are keyed `000000000`, `000000001`, ... so bare keys repeat in every shard of a
crawl. Members are named `<shard>_<key>`: unique across the crawl, and free of dots (WebDataset splits
a member name at its first dot into key and extension).
"""

from __future__ import annotations

import re

_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def member_key(shard: str | None, key: str) -> str:
    """The sample's WebDataset key: `<shard>_<key>`, or `key` alone when no shard is given.

    Characters other than letters, digits, `_` and `-` in the shard name (a dot would split the key)
    become `-`."""
    if _NOT_KEY_CHARS.search(key):
        raise ValueError(f"pair key {key!r} may only hold letters, digits, '_' and '-'")
    if not shard:
        return key
    return f"{_NOT_KEY_CHARS.sub('-', shard)}_{key}"


def image_member(key: str, tar_member: str | None = None) -> str:
    """The tar member holding a status row's image: its `tar_member`, else the pre-shard-prefix
    layout's `<key>.jpg` (tars written before member keys were made unique)."""
    return tar_member or f"{key}.jpg"
