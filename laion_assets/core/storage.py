"""Where the pipeline's files live: one root, with atomic writes.

Every write lands under a temporary name and is renamed when complete, so a re-run replaces a
partition whole and a crash never leaves half a file. Stage code works on local paths; the
`Storage` maps logical paths (`<crawl>/pairs/<shard>.parquet`) to them. An S3 implementation slots
in behind the same methods.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq


def split_partition_key(partition_key: str) -> tuple[str, str]:
    """'CC-MAIN-2024-22/00042' -> ('CC-MAIN-2024-22', '00042')."""
    crawl, sep, shard = partition_key.rpartition("/")
    if not sep or not crawl or not shard:
        raise ValueError(f"partition key {partition_key!r} is not '<crawl>/<shard>'")
    return crawl, shard


class LocalStorage:
    """A directory tree as the pipeline's storage root."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, relpath: str) -> Path:
        p = (self.root / relpath).resolve()
        if self.root not in p.parents and p != self.root:
            raise ValueError(f"{relpath!r} escapes the storage root {self.root}")
        return p

    def uri(self, relpath: str) -> str:
        return str(self.path(relpath))

    def exists(self, relpath: str) -> bool:
        return self.path(relpath).exists()

    def open_read(self, relpath_or_uri: str) -> BinaryIO:
        p = Path(relpath_or_uri)
        return open(p if p.is_absolute() else self.path(relpath_or_uri), "rb")

    @contextlib.contextmanager
    def staging_dir(self, relpath: str) -> Iterator[Path]:
        """A fresh local directory that replaces `relpath` whole when the block succeeds."""
        final = self.path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def write_parquet(self, table: pa.Table, relpath: str) -> Path:
        final = self.path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def write_bytes(self, data: bytes, relpath: str) -> Path:
        final = self.path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def read_parquet(self, relpath: str) -> pa.Table:
        return pq.read_table(self.path(relpath))


class ShardPaths:
    """Logical paths (relative to the storage root) of one shard's outputs, stage by stage."""

    def __init__(self, crawl: str, shard: str):
        self.crawl, self.shard = crawl, shard

    @classmethod
    def from_partition_key(cls, partition_key: str) -> ShardPaths:
        return cls(*split_partition_key(partition_key))

    @property
    def pairs(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.parquet"

    @property
    def pair_errors(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.errors.parquet"

    @property
    def images_dir(self) -> str:
        return f"{self.crawl}/images/{self.shard}"

    @property
    def downloads(self) -> str:
        return f"{self.crawl}/images/{self.shard}.parquet"

    @property
    def scores(self) -> str:
        return f"{self.crawl}/scores/{self.shard}.parquet"

    @property
    def embeddings_dir(self) -> str:
        return f"{self.crawl}/scores/{self.shard}"

    @property
    def filtered(self) -> str:
        return f"{self.crawl}/filtered/{self.shard}.parquet"

    @property
    def pair_stats(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.stats.parquet"
