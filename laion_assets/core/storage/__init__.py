"""The storage root: one protocol (`base.Storage`), a local and an S3 implementation, every path (`layout`).

`open_storage` is the one place that looks at the root's scheme; everything else uses the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from laion_assets.core.storage.base import Storage


def __getattr__(name: str):
    # `Storage` on first use: importing the package (settings.py does, for `layout`) must not load
    # base.py's pyarrow.parquet and friends (~20 ms CPU in every extraction worker, issue 22).
    if name == "Storage":
        from laion_assets.core.storage.base import Storage

        return Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(root: str | Path, *, s3: Callable[[], tuple[Any, Any]] | None = None,
                 cache_dir: str | None = None) -> Storage:
    """A `LocalStorage` for a directory, an `S3Storage` for `s3://bucket/prefix`; `s3` is called only
    for an S3 root and returns (a boto3 client, `S3Credentials` for pyarrow/DuckDB readers)."""
    root = str(root)
    if root.startswith("s3://"):
        from laion_assets.core.storage.s3 import S3Storage

        if s3 is None:
            raise ValueError(f"{root}: an S3 storage root needs an S3 client")
        client, credentials = s3()
        return S3Storage(root, client, credentials=credentials, cache_dir=cache_dir)
    from laion_assets.core.storage.local import LocalStorage

    return LocalStorage(root)
