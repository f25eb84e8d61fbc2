"""Where the pipeline's files live: one root (a local directory or `s3://bucket/prefix`), atomic commits.

Files are written whole (temp name + rename locally, one PUT on S3). A directory of outputs (a
shard's tars, its embeddings, the sample crawl) is never replaced in place: each commit writes a new
immutable version `<dir>/v-<content hash>/` and then ONE small record names it, written last:
either the stage's table beside the directory (`<dir>.parquet`, e.g. the download status table,
carrying the version in its parquet metadata, so table and images commit as one step) or the
pointer file `<dir>/_CURRENT`. A kill at any point leaves the old or the new complete state visible,
never a mix; what a killed run left behind (temp files, staging dirs, unnamed versions) is removed
when the next commit of that directory starts, and superseded versions right after a commit.
Readers resolve a directory through its record (`local_dir`, `dir_uri`). Stage code uses only the
`Storage` protocol and never branches on the scheme.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.parquet as pq


COMMIT_META_KEY = b"laion_assets.commit"
POINTER_NAME = "_CURRENT"
VERSION_PREFIX = "v-"
STAGING_PREFIX = ".staging-"


def tree_version(local_dir: Path) -> tuple[str, list[tuple[str, int]]]:
    """Content hash of a directory tree ('v-' + 16 hex) and its (relative path, size) list, sorted."""
    h = hashlib.sha256()
    files: list[tuple[str, int]] = []
    for p in sorted(local_dir.rglob("*")):
        if p.is_file():
            rel = p.relative_to(local_dir).as_posix()
            files.append((rel, p.stat().st_size))
            h.update(rel.encode() + b"\0")
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            h.update(b"\0\0")
    return VERSION_PREFIX + h.hexdigest()[:16], files


def commit_metadata(version: str, files: list[tuple[str, int]]) -> bytes:
    return json.dumps({"version": version, "files": [[n, s] for n, s in files]}, sort_keys=True).encode()


def with_commit(table: pa.Table, record: bytes) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[COMMIT_META_KEY] = record
    return table.replace_schema_metadata(meta)


def table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@runtime_checkable
class Storage(Protocol):
    """What every stage uses to read and write under the storage root (local or S3)."""

    root_uri: str

    def uri(self, relpath: str) -> str: ...
    def exists(self, relpath: str) -> bool: ...
    def list(self, prefix: str, suffix: str = "") -> list[str]: ...
    def read_parquet(self, relpath: str, columns: list[str] | None = None) -> pa.Table: ...
    def write_parquet(self, table: pa.Table, relpath: str) -> str: ...
    def read_bytes(self, relpath: str) -> bytes: ...
    def write_bytes(self, data: bytes, relpath: str) -> str: ...
    def open_read(self, relpath_or_uri: str, offset: int = 0, length: int | None = None) -> BinaryIO: ...
    def staging_dir(self, relpath: str, record: str | None = None) -> contextlib.AbstractContextManager[Path]: ...
    def write_once_dir(self, relpath: str) -> contextlib.AbstractContextManager[Path]: ...
    # A stored file placed into a `write_once_dir` staging directory without copying its bytes where
    # the storage can: a hard link (local), a server-side copy at the commit (S3).
    def link_into(self, relpath: str, dest: Path) -> None: ...
    def live_version(self, relpath: str) -> str | None: ...
    def live_relpath(self, relpath: str) -> str: ...
    def resolve(self, relpath: str) -> str: ...
    def read_parquet_many(self, relpaths: list[str]) -> pa.Table: ...
    def dir_uri(self, relpath: str) -> str: ...
    def local_dir(self, relpath: str) -> Path: ...
    def local_file(self, relpath: str) -> Path: ...
    def upload_file(self, local_path: Path, relpath: str) -> str: ...
    def clean_orphans(self, relpath: str) -> list[str]: ...
    def register_duckdb(self, con: object) -> None: ...
    def local_warehouse_path(self) -> Path: ...
    def live_dir(self, relpath: str) -> Path: ...
    def delete(self, relpaths: list[str]) -> int: ...
    def client_for(self, uri: str) -> object | None: ...


class _CommitMixin:
    """The commit protocol both storages share; subclasses supply the primitive operations."""

    on_commit_step: Callable[[str], None] | None = None
    _pending: dict[str, list]

    def _step(self, name: str) -> None:
        if self.on_commit_step is not None:
            self.on_commit_step(name)

    def _intercept(self, table: pa.Table, relpath: str) -> bool:
        slot = self._pending.get(relpath)
        if slot is None:
            return False
        slot.append(table)
        return True

    def live_version(self, relpath: str) -> str | None:
        """The live version of a committed directory ('v-...'), '' for a plain (legacy) one, None if none."""
        record = self._read_record(relpath)
        if record is not None:
            return record["version"]
        return "" if self._has_plain_dir(relpath) else None

    def _read_record(self, relpath: str) -> dict | None:
        table_rel = f"{relpath}.parquet"
        if self._exists_file(table_rel):
            meta = self._parquet_metadata(table_rel) or {}
            if COMMIT_META_KEY in meta:
                return json.loads(meta[COMMIT_META_KEY])
        raw = self._read_optional(f"{relpath}/{POINTER_NAME}")
        return json.loads(raw) if raw is not None else None

    def live_relpath(self, relpath: str) -> str:
        """Where the live version of a committed directory is (relpath itself for a plain one)."""
        version = self.live_version(relpath)
        return f"{relpath}/{version}" if version else relpath

    def resolve(self, relpath: str) -> str:
        """A path that may lie inside committed directories (pointer `_CURRENT`), made physical."""
        parts = [p for p in relpath.strip("/").split("/") if p]
        out: list[str] = []
        for i, part in enumerate(parts):
            out.append(part)
            if i < len(parts) - 1:
                raw = self._read_optional("/".join(out) + f"/{POINTER_NAME}")
                if raw is not None:
                    out.append(json.loads(raw)["version"])
        return "/".join(out)

    def read_parquet_many(self, relpaths: list[str]) -> pa.Table:
        """Several parquet files as one table (columns unified by name)."""
        tables = [self.read_parquet(p) for p in relpaths]
        if not tables:
            raise FileNotFoundError("no parquet files to read")
        return pa.concat_tables(tables, promote_options="default")

    @contextlib.contextmanager
    def _commit_lock(self, relpath: str) -> Iterator[None]:
        """One commit of a directory at a time on this machine (the kernel drops the lock when a
        process dies, so a killed run never blocks the next); a second one fails instead of racing."""
        lock_dir = Path(tempfile.gettempdir()) / "laion-assets-locks"
        lock_dir.mkdir(exist_ok=True)
        name = hashlib.sha256(self.uri(relpath).encode()).hexdigest()[:32]
        with open(lock_dir / f"{name}.lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"{self.uri(relpath)} is being committed by another process (the same partition "
                    "materialized twice at once?); retry when it has finished"
                ) from None
            yield

    @contextlib.contextmanager
    def staging_dir(self, relpath: str, record: str | None = None) -> Iterator[Path]:
        """A fresh local directory that becomes the live version of `relpath` when the block succeeds.

        With `record` (must be `<relpath>.parquet`), the table the block writes to that path with
        `write_parquet` is held back and written last, carrying the version: it is the commit.
        Without, the pointer `<relpath>/_CURRENT` is. Orphans of killed runs are cleaned first.
        """
        if record is not None and record != f"{relpath}.parquet":
            raise ValueError(f"record {record!r} must be {relpath}.parquet")
        with self._commit_lock(relpath):
            with self._staged_commit(relpath, record) as tmp:
                yield tmp

    @contextlib.contextmanager
    def _staged_commit(self, relpath: str, record: str | None) -> Iterator[Path]:
        self.clean_orphans(relpath)
        tmp = self._new_local_staging(relpath)
        if record is not None:
            self._pending[record] = []
        try:
            yield tmp
            self._step("staged")
            tables = self._pending.pop(record, None) if record is not None else None
            if record is not None and not tables:
                raise RuntimeError(f"staging_dir({relpath!r}) ended without writing its record {record!r}")
            version, files = tree_version(tmp)
            meta = commit_metadata(version, files)
            self._put_version(tmp, relpath, version)
            self._step("version_written")
            if tables:
                self._put_table(with_commit(tables[-1], meta), record)
            else:
                self._put_bytes(meta, f"{relpath}/{POINTER_NAME}")
            self._step("record_written")
            self._drop_superseded(relpath, version, keep_pointer=not tables)
            self._step("superseded_removed")
        finally:
            if record is not None:
                self._pending.pop(record, None)
            shutil.rmtree(tmp, ignore_errors=True)
