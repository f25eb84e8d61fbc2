"""`S3Storage`: the storage root as `s3://bucket/prefix`, with the same commit guarantee as a local root.

S3 has no rename, but a single PUT is atomic. A directory commit uploads the new version's objects
under `<dir>/v-<content hash>/` and then PUTs one small record last (the stage's table carrying the
version, or `<dir>/_CURRENT`, which lists every object and its size), so readers that resolve the
directory through its record never see a partial set. Objects of unnamed versions and aborted
multipart uploads are removed when the next commit of that directory starts.

DuckDB reads `s3://` through an fsspec filesystem registered on the connection (pyarrow's native
S3FileSystem wrapped by fsspec's ArrowFSWrapper, same credentials and endpoint): the `httpfs`
extension cannot be installed offline for duckdb 2.0.1. Credentials never appear in reprs or logs.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.storage.layout import WAREHOUSE
from laion_assets.core.storage.base import POINTER_NAME, VERSION_PREFIX, _CommitMixin, commit_metadata, table_bytes

COMPLETE_NAME = "_COMPLETE"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix/' -> ('bucket', 'some/prefix')."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class S3Credentials:
    """What a second client (pyarrow, DuckDB) needs to reach the same S3 API; secrets hidden in repr."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    anonymous: bool = False

    def arrow_filesystem(self):
        from pyarrow import fs as pafs

        kwargs: dict[str, Any] = {"anonymous": self.anonymous}
        if self.endpoint_url:
            kwargs["endpoint_override"] = self.endpoint_url
        if self.region:
            kwargs["region"] = self.region
        if not self.anonymous and self.access_key_id:
            kwargs.update(access_key=self.access_key_id, secret_key=self.secret_access_key)
            if self.session_token:
                kwargs["session_token"] = self.session_token
        return pafs.S3FileSystem(**kwargs)

    def fsspec_filesystem(self):
        """An fsspec filesystem for `s3://` (what DuckDB's `register_filesystem` takes)."""
        from fsspec.implementations.arrow import ArrowFSWrapper

        return ArrowFSWrapper(self.arrow_filesystem())


class _BodyReader(io.RawIOBase):
    """A botocore streaming body as a file object: reads stream, nothing is downloaded first."""

    def __init__(self, body: Any):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._body.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with_close = getattr(self._body, "close", None)
        if with_close:
            with_close()
        super().close()


class S3RangeFile(io.RawIOBase):
    """A seekable read-only view of one object: each read is one ranged GET (parquet footers, WARC
    records by offset) without fetching the whole object."""

    def __init__(self, client: Any, bucket: str, key: str):
        self._client, self._bucket, self._key = client, bucket, key
        self._size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b) -> int:
        if self._pos >= self._size or len(b) == 0:
            return 0
        end = min(self._size, self._pos + len(b)) - 1
        data = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")["Body"].read()
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_s3_object(client: Any, bucket: str, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
    """A streaming reader over one object (optionally a byte range of it)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if offset or length is not None:
        end = "" if length is None else str(offset + length - 1)
        kwargs["Range"] = f"bytes={offset}-{end}"
    body = client.get_object(**kwargs)["Body"]
    return io.BufferedReader(_BodyReader(body), buffer_size=1 << 20)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


class S3Storage(_CommitMixin):
    """An `s3://bucket/prefix` root; `client` is a boto3 S3 client (dagster-aws `S3Resource.get_client()`)."""

    def __init__(
        self,
        root_uri: str,
        client: Any,
        *,
        credentials: S3Credentials | None = None,
        cache_dir: str | Path | None = None,
        on_commit_step: Callable[[str], None] | None = None,
    ):
        self.bucket, self.prefix = parse_s3_uri(root_uri)
        self.root_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client
        self.credentials = credentials or S3Credentials()
        base = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "laion-assets-cache"
        self.cache_dir = (base / self.bucket / (self.prefix or "_")).resolve()
        self.on_commit_step = on_commit_step
        self._pending = {}
        self._copies: dict[Path, dict[str, tuple[str, tuple[int, int, int]]]] = {}  # staged dir -> server-side copies

    def __repr__(self) -> str:
        return f"S3Storage({self.root_uri!r})"

    def key(self, relpath: str) -> str:
        parts = [p for p in relpath.split("/") if p]
        if relpath.startswith("/") or any(p in (".", "..") for p in parts) or not parts:
            raise ValueError(f"{relpath!r} escapes the storage root {self.root_uri}")
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def uri(self, relpath: str) -> str:
        return f"s3://{self.bucket}/{self.key(relpath)}"

    def exists(self, relpath: str) -> bool:
        if self._exists_file(relpath):
            return True
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(relpath) + "/", MaxKeys=1)
        return found.get("KeyCount", 0) > 0

    def _iter_objects(self, key_prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key_prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            yield from page.get("Contents", [])

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        base = self.key(prefix) + "/"
        out = []
        for obj in self._iter_objects(base, delimiter="/"):
            name = obj["Key"][len(base) :]
            if name and not name.startswith(".") and name.endswith(suffix):
                out.append(f"{prefix.rstrip('/')}/{name}")
        return sorted(out)

    def read_bytes(self, relpath: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(relpath))["Body"].read()

    def read_parquet(self, relpath: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.read_bytes(relpath)), columns=columns)

    def write_bytes(self, data: bytes, relpath: str) -> str:
        # upload_fileobj goes multipart past 8 MB; the object appears only when complete either way
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self.key(relpath))
        return self.uri(relpath)

    def write_parquet(self, table: pa.Table, relpath: str) -> str:
        if self._intercept(table, relpath):
            return self.uri(relpath)
        return self.write_bytes(table_bytes(table), relpath)

    def upload_file(self, local_path: Path, relpath: str) -> str:
        self.client.upload_file(str(local_path), self.bucket, self.key(relpath))
        return self.uri(relpath)

    def open_read(self, relpath_or_uri: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        if relpath_or_uri.startswith("s3://"):
            bucket, key = parse_s3_uri(relpath_or_uri)
        else:
            bucket, key = self.bucket, self.key(relpath_or_uri)
        return open_s3_object(self.client, bucket, key, offset, length)

    def dir_uri(self, relpath: str) -> str:
        return self.uri(self.live_relpath(relpath))

    def local_file(self, relpath: str) -> Path:
        """A fresh local copy of one object (replaced atomically in the cache)."""
        dest = self.cache_dir / "files" / relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            self.client.download_file(self.bucket, self.key(relpath), str(tmp))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def live_dir(self, relpath: str) -> Path:
        """A local cache copy of the live version (S3 objects cannot be followed in place)."""
        return self.local_dir(relpath)

    def client_for(self, uri: str) -> Any | None:
        """This storage's boto3 client for an `s3://` URI in its own bucket (its credentials), else None."""
        return self.client if uri.startswith(f"s3://{self.bucket}/") else None

    def local_dir(self, relpath: str) -> Path:
        """The live version as a local directory: versions are immutable, so a cached copy stays valid."""
        record = self._read_record(relpath)
        if record is None:  # a plain (or absent) directory: a fresh copy of whatever is there now
            dest = self.cache_dir / "plain" / relpath
            base = self.key(relpath) + "/"
            files = [(o["Key"][len(base) :], o["Size"]) for o in self._iter_objects(base)]
            return self._download(base, files, dest)
        version = record["version"]
        dest = self.cache_dir / "versions" / relpath / version
        if (dest / ".complete").exists():
            return dest
        out = self._download(f"{self.key(relpath)}/{version}/", [tuple(f) for f in record["files"]], dest)
        for old in dest.parent.iterdir():  # cached copies of superseded versions
            if old.name != version and old.name.startswith(VERSION_PREFIX):
                shutil.rmtree(old, ignore_errors=True)
        return out

    def _download(self, base_key: str, files: list[tuple[str, int]], dest: Path) -> Path:
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            for name, size in files:
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, base_key + name, str(target))
                if target.stat().st_size != size:
                    raise OSError(f"s3://{self.bucket}/{base_key}{name}: {target.stat().st_size} bytes, record says {size}")
            (tmp / ".complete").write_bytes(b"")
            if dest.exists():
                shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def local_warehouse_path(self) -> Path:
        """dbt builds the warehouse here, then it is uploaded to `<root>/warehouse.duckdb`."""
        d = self.cache_dir / "warehouse"
        d.mkdir(parents=True, exist_ok=True)
        return d / WAREHOUSE

    def register_duckdb(self, con: Any) -> None:
        """Let a DuckDB connection read `s3://` paths with this storage's credentials and endpoint."""
        con.register_filesystem(self.credentials.fsspec_filesystem())

    # primitives of the commit protocol
    def _exists_file(self, relpath: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relpath))
            return True
        except Exception as exc:  # botocore ClientError; a 404 means absent, anything else is real
            if _is_missing(exc):
                return False
            raise

    def _parquet_metadata(self, relpath: str) -> dict | None:
        """Only the footer is fetched (ranged GETs), not the table."""
        with S3RangeFile(self.client, self.bucket, self.key(relpath)) as f:
            return pq.read_schema(f).metadata

    def _read_optional(self, relpath: str) -> bytes | None:
        try:
            return self.read_bytes(relpath)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def _has_plain_dir(self, relpath: str) -> bool:
        base = self.key(relpath) + "/"
        for obj in self._iter_objects(base):
            name = obj["Key"][len(base) :]
            if not name.startswith((".", VERSION_PREFIX, POINTER_NAME)):
                return True
        return False

    def _new_local_staging(self, relpath: str) -> Path:
        d = self.cache_dir / "staging" / relpath / uuid.uuid4().hex[:8]
        d.mkdir(parents=True)
        return d

    def _put_version(self, staged: Path, relpath: str, version: str) -> None:
        if self.live_version(relpath) == version:  # the same content is live already
            return
        base = f"{self.key(relpath)}/{version}/"
        for p in sorted(staged.rglob("*")):
            if p.is_file():
                self.client.upload_file(str(p), self.bucket, base + p.relative_to(staged).as_posix())
                self._step("object_uploaded")

    def _put_table(self, table: pa.Table, relpath: str) -> None:
        self.write_bytes(table_bytes(table), relpath)

    def _put_bytes(self, data: bytes, relpath: str) -> None:
        self.write_bytes(data, relpath)

    def delete(self, relpaths: list[str]) -> int:
        """Delete these files (missing ones are ignored); the number of objects deleted."""
        keys = [self.key(r) for r in relpaths]
        self._delete_keys(keys)
        return len(keys)

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _drop_superseded(self, relpath: str, version: str, keep_pointer: bool) -> None:
        base = self.key(relpath) + "/"
        keep = (base + version + "/", base + POINTER_NAME) if keep_pointer else (base + version + "/",)
        self._delete_keys([o["Key"] for o in self._iter_objects(base) if not o["Key"].startswith(keep)])

    @contextlib.contextmanager
    def write_once_dir(self, relpath: str) -> Iterator[Path]:
        """A directory written once (a content-addressed release): its objects, then `_COMPLETE`
        (the file list) last; a complete copy is never rewritten, an incomplete one is overwritten."""
        with self._commit_lock(relpath):
            tmp = self._new_local_staging(relpath)
            self._copies[tmp] = copies = {}
            try:
                yield tmp
                self._step("staged")
                if not self._exists_file(f"{relpath}/{COMPLETE_NAME}"):
                    files = sorted((p.relative_to(tmp).as_posix(), p.stat().st_size) for p in tmp.rglob("*") if p.is_file())
                    for name, _size in files:
                        dest = f"{self.key(relpath)}/{name}"
                        src = copies.get(name)
                        if src is not None and _stamp(tmp / name) == src[1]:  # still the stand-in link_into left
                            # Managed copy: CopyObject, or UploadPartCopy in upload_file's part size, so the
                            # object keeps its bytes and its ETag; nothing passes through this machine.
                            self.client.copy({"Bucket": self.bucket, "Key": src[0]}, self.bucket, dest)
                        else:
                            self.client.upload_file(str(tmp / name), self.bucket, dest)
                        self._step("object_uploaded")
                    self.write_bytes(commit_metadata("", files), f"{relpath}/{COMPLETE_NAME}")
                self._step("record_written")
            finally:
                self._copies.pop(tmp, None)
                shutil.rmtree(tmp, ignore_errors=True)

    def link_into(self, relpath: str, dest: Path) -> None:
        """`relpath` at `dest`: inside a `write_once_dir` staging directory, a sparse stand-in of the
        object's size (what the release checks compare for a linked part) and a server-side copy
        at the commit, so an untouched part is never downloaded or uploaded again; elsewhere a
        download."""
        dest = Path(dest)
        for staged, copies in self._copies.items():
            if dest.is_relative_to(staged):
                size = self.client.head_object(Bucket=self.bucket, Key=self.key(relpath))["ContentLength"]
                with open(dest, "wb") as f:
                    f.truncate(size)
                copies[dest.relative_to(staged).as_posix()] = (self.key(relpath), _stamp(dest))
                return
        shutil.copyfile(self.local_file(relpath), dest)

    def clean_orphans(self, relpath: str) -> list[str]:
        """Delete objects of versions no record names, and abort multipart uploads left under `relpath`."""
        base = self.key(relpath)
        removed: list[str] = []
        local_staging = self.cache_dir / "staging" / relpath
        if local_staging.is_dir():  # local staging copies a killed run left
            for d in local_staging.iterdir():
                shutil.rmtree(d, ignore_errors=True)
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=base)
        for up in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
            removed.append(self._rel(up["Key"]))
        live = self.live_version(relpath)
        stale = [
            o["Key"]
            for o in self._iter_objects(base + "/")
            if o["Key"][len(base) + 1 :].startswith(VERSION_PREFIX)
            and not (live and o["Key"].startswith(f"{base}/{live}/"))
        ]
        self._delete_keys(stale)
        return removed + [self._rel(k) for k in stale]

