"""`LocalStorage`: the storage root as a local directory (temp file + rename, flock-serialized commits)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.storage.base import (
    POINTER_NAME,
    STAGING_PREFIX,
    VERSION_PREFIX,
    _CommitMixin,
)
from laion_assets.core.storage.layout import WAREHOUSE

class LocalStorage(_CommitMixin):
    """A directory tree as the pipeline's storage root."""

    def __init__(self, root: str | Path, *, on_commit_step: Callable[[str], None] | None = None):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)
        self.on_commit_step = on_commit_step
        self._pending = {}

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

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        d = self.path(prefix)
        if not d.is_dir():
            return []
        return sorted(
            f"{prefix.rstrip('/')}/{p.name}"
            for p in d.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffix)
        )

    def open_read(self, relpath_or_uri: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        p = Path(relpath_or_uri)
        f = open(p if p.is_absolute() else self.path(relpath_or_uri), "rb")
        if offset:
            f.seek(offset)
        if length is None:
            return f
        with f:
            return io.BytesIO(f.read(length))

    def read_parquet(self, relpath: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(relpath), columns=columns)

    def read_bytes(self, relpath: str) -> bytes:
        return self.path(relpath).read_bytes()

    def _atomic_write(self, relpath: str, write: Callable[[Path], None]) -> str:
        final = self.path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            write(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return str(final)

    def write_parquet(self, table: pa.Table, relpath: str) -> str:
        if self._intercept(table, relpath):
            return str(self.path(relpath))
        return self._atomic_write(relpath, lambda tmp: pq.write_table(table, tmp, compression="zstd"))

    def write_bytes(self, data: bytes, relpath: str) -> str:
        return self._atomic_write(relpath, lambda tmp: tmp.write_bytes(data))

    def upload_file(self, local_path: Path, relpath: str) -> str:
        if Path(local_path).resolve() == self.path(relpath):
            return str(self.path(relpath))
        return self._atomic_write(relpath, lambda tmp: shutil.copyfile(local_path, tmp))

    def dir_uri(self, relpath: str) -> str:
        return str(self.path(self.live_relpath(relpath)))

    def delete(self, relpaths: list[str]) -> int:
        """Delete these files (missing ones are ignored); the number deleted."""
        n = 0
        for r in relpaths:
            path = self.path(r)
            if path.is_file():
                path.unlink()
                n += 1
        return n

    def live_dir(self, relpath: str) -> Path:
        """The committed directory itself: a reader that follows its `_CURRENT` sees every new version."""
        return self.path(relpath)

    def client_for(self, uri: str) -> None:
        return None

    def local_dir(self, relpath: str) -> Path:
        return self.path(self.live_relpath(relpath))

    def local_file(self, relpath: str) -> Path:
        return self.path(relpath)

    def register_duckdb(self, con: object) -> None:
        """Local paths need nothing registered (S3Storage registers its filesystem here)."""

    def local_warehouse_path(self) -> Path:
        """Where dbt's DuckDB file is built (DuckDB writes only local files)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.path(WAREHOUSE)

    # primitives of the commit protocol
    def _exists_file(self, relpath: str) -> bool:
        return self.path(relpath).is_file()

    def _parquet_metadata(self, relpath: str) -> dict | None:
        return pq.read_schema(self.path(relpath)).metadata

    def _read_optional(self, relpath: str) -> bytes | None:
        try:
            return self.path(relpath).read_bytes()
        except FileNotFoundError:
            return None

    def _has_plain_dir(self, relpath: str) -> bool:
        d = self.path(relpath)
        return d.is_dir() and any(not p.name.startswith((".", VERSION_PREFIX)) for p in d.iterdir())

    def _new_local_staging(self, relpath: str) -> Path:
        d = self.path(relpath)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _put_version(self, staged: Path, relpath: str, version: str) -> None:
        final = self.path(f"{relpath}/{version}")
        if final.exists():  # same content committed (or left complete by a killed run) before
            return
        os.replace(staged, final)

    def _put_table(self, table: pa.Table, relpath: str) -> None:
        self._atomic_write(relpath, lambda tmp: pq.write_table(table, tmp, compression="zstd"))

    def _put_bytes(self, data: bytes, relpath: str) -> None:
        self.write_bytes(data, relpath)

    def _drop_superseded(self, relpath: str, version: str, keep_pointer: bool) -> None:
        d = self.path(relpath)
        for p in d.iterdir():
            if p.name == version or (keep_pointer and p.name == POINTER_NAME):
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    @contextlib.contextmanager
    def write_once_dir(self, relpath: str) -> Iterator[Path]:
        """A directory written once and never replaced (a content-addressed release): staged, then
        renamed into place if absent; when a complete copy exists already the staged one is dropped."""
        with self._commit_lock(relpath):
            final = self.path(relpath)
            final.parent.mkdir(parents=True, exist_ok=True)
            for stale in final.parent.glob(f".{final.name}.staging-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                yield tmp
                self._step("staged")
                if not final.exists():
                    os.rename(tmp, final)
                self._step("record_written")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def link_into(self, relpath: str, dest: Path) -> None:
        """`relpath` at `dest` (a staged write-once directory): a hard link, the same bytes and no
        copy, where the filesystem allows; else a copy."""
        try:
            os.link(self.path(relpath), dest)
        except OSError:
            shutil.copyfile(self.path(relpath), dest)

    def clean_orphans(self, relpath: str) -> list[str]:
        """Remove what killed runs left of `relpath`: staging dirs, temp files, unnamed versions."""
        d = self.path(relpath)
        removed: list[str] = []
        for stale in [*d.parent.glob(f".{d.name}.tmp-*"), *d.parent.glob(f".{d.name}.old-*"),
                      *d.parent.glob(f".{d.name}.parquet.tmp-*")]:
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
            removed.append(stale.name)
        if not d.is_dir():
            return removed
        live = self.live_version(relpath)
        for p in d.iterdir():
            orphan = p.name.startswith(STAGING_PREFIX) or p.name.startswith(f".{POINTER_NAME}.tmp-") or (
                p.name.startswith(VERSION_PREFIX) and p.name != live
            )
            if orphan:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed
