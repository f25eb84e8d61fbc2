"""Crawl manifests: which WARC files a crawl has, grouped into shards of K files, and where to read them.

A shard is the unit of work (one Dagster partition). Shards are numbered by position in the sorted
file list, so the same listing always gives the same shards and a re-run never reshuffles work.

Each file has two names: `warc_path`, the crawl's own path (`crawl-data/CC-MAIN-.../warc/...warc.gz`
for Common Crawl, else the path under its source), which is what provenance columns carry; and
`warc_uri`, where this build reads it (a local path, `s3://...` or `https://...`). Sources: a local
directory, an `s3://` prefix of WARC files, or a Common Crawl listing `crawl-data/<crawl>/warc.paths.gz`
(or `wat.paths.gz`) on `s3://commoncrawl/` or `https://data.commoncrawl.org/`. WARC files are read as
streams (`open_uri`), never downloaded whole first.
"""

from __future__ import annotations

import gzip
import io
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.schemas.manifest import MANIFEST_SCHEMA
from laion_assets.core.storage.keys import make_partition_key, validate_crawl_name

WARC_SUFFIXES = (".warc", ".warc.gz", ".wat", ".wat.gz", ".warc.wat.gz", ".arc", ".arc.gz")

CC_HTTPS_BASE = "https://data.commoncrawl.org/"
CC_S3_BASE = "s3://commoncrawl/"


@dataclass(frozen=True)
class WarcFile:
    path: str  # the crawl's own path: provenance
    uri: str  # where this build reads it


def provenance_path(uri: str, fallback: str) -> str:
    """`crawl-data/...` when the URI follows Common Crawl's layout, else `fallback`."""
    i = uri.find("crawl-data/")
    return uri[i:] if i >= 0 else fallback


def _s3_pages(uri: str, s3_client: Any, what: str) -> Iterator[tuple[str, str, dict]]:
    """(bucket, prefix, page) of a one-level `list_objects_v2` listing under an `s3://` URI."""
    if s3_client is None:
        raise ValueError(f"{what} {uri!r} needs an S3 client")
    bucket, _, prefix = uri[5:].partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        yield bucket, prefix, page


def listing_line_file(line: str, lineno: int, source: str, base: str) -> WarcFile:
    """One line of a `*.paths.gz` listing (docs/architecture.md, "Crawl listings"): a relative path
    (Common Crawl's form) is joined to `base`; a full `s3://`/`https://`/`http://` URI is used as is;
    in a local listing an absolute path or a `file://` URI names a local file. Anything else, or a
    name that is not a WARC/WAT/ARC file, is refused here, naming the line."""
    local = "://" not in source
    where = f"crawl listing {source!r} line {lineno}"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line) or " " in line:  # C0, DEL, C1
        raise ValueError(f"{where}: spaces or control characters in {line[:200]!r}")
    if ".." in line.split("://", 1)[-1].split("/"):  # in every form: an absolute path or URI too
        raise ValueError(f"{where}: '..' in {line[:200]!r}")
    if line.startswith(("s3://", "https://", "http://")):
        path, uri = line, line
    elif line.startswith("file://"):
        if not local or not line.startswith("file:///"):
            raise ValueError(f"{where}: {line[:200]!r}: file:// lines need a local listing and an absolute path")
        path = uri = line[len("file://"):]
    elif line.startswith("/"):
        if not local:
            raise ValueError(f"{where}: absolute path {line[:200]!r} in a remote listing")
        path = uri = line
    elif ":" in line.split("/", 1)[0]:
        raise ValueError(f"{where}: unsupported form {line[:200]!r} (relative path, absolute path, "
                         "file://, s3://, https:// or http://)")
    else:
        path, uri = line, base + line
    if not path.endswith(WARC_SUFFIXES):
        raise ValueError(f"{where}: {line[:200]!r} is not a {'/'.join(WARC_SUFFIXES)} file")
    return WarcFile(path, uri)


def list_source(source: str, s3_client: Any = None, *, label: str | None = None) -> list[WarcFile]:
    """The WARC/WAT files of a crawl source, sorted by path (see the module docstring)."""
    if source.endswith(".paths.gz"):
        with open_uri(source, s3_client) as f:
            listing = gzip.decompress(f.read()).decode()
        # listed paths are relative to what precedes `crawl-data/` (the bucket or host root)
        i = source.find("crawl-data/")
        base = source[:i] if i >= 0 else source.rsplit("/", 1)[0] + "/"
        files = [listing_line_file(line.strip(), n, source, base)
                 for n, line in enumerate(listing.splitlines(), 1) if line.strip()]
    elif source.startswith("s3://"):
        files = []
        for bucket, prefix, page in _s3_pages(source, s3_client, "crawl source"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name.endswith(WARC_SUFFIXES):
                    uri = f"s3://{bucket}/{obj['Key']}"
                    files.append(WarcFile(provenance_path(uri, f"{label}/{name}" if label else uri), uri))
        if not files:
            raise FileNotFoundError(f"no WARC files ({', '.join(WARC_SUFFIXES)}) under crawl source {source!r}")
    else:
        files = [
            WarcFile(provenance_path(u, f"{label}/{Path(u).name}" if label else Path(u).name), u)
            for u in list_local_warcs(source)
        ]
    files.sort(key=lambda w: w.path)
    if len({w.path for w in files}) != len(files):
        raise ValueError(f"crawl source {source!r} lists the same path twice")
    return files


def open_uri(uri: str, s3_client: Any = None, offset: int = 0, length: int | None = None) -> BinaryIO:
    """A streaming reader over a local file, an `s3://` object or an `https://` URL (optionally a range)."""
    if uri.startswith("s3://"):
        from laion_assets.core.storage.s3 import open_s3_object, parse_s3_uri

        if s3_client is None:
            raise ValueError(f"reading {uri!r} needs an S3 client")
        bucket, key = parse_s3_uri(uri)
        return open_s3_object(s3_client, bucket, key, offset, length)
    if uri.startswith(("https://", "http://")):
        req = urllib.request.Request(uri, headers={"User-Agent": "laion-assets"})
        if offset or length is not None:
            req.add_header("Range", f"bytes={offset}-{'' if length is None else offset + length - 1}")
        return io.BufferedReader(urllib.request.urlopen(req, timeout=60), buffer_size=1 << 20)
    # A local file: the storage's range read, which reads an absolute path as is (the root only
    # resolves relative paths), so a path relative to the working directory is made absolute first.
    path = Path(uri).absolute()
    return LocalStorage(path.parent).open_read(str(path), offset, length)


def crawl_client(uri: str, own_client: Callable[[str], Any], other_client: Callable[[], Any]) -> Any:
    """The S3 client a crawl URI needs (None for local and https URIs): `own_client(uri)` (the
    storage's, for its own bucket) when it has one, else `other_client()` (e.g. anonymous)."""
    if not uri.startswith("s3://"):
        return None
    return own_client(uri) or other_client()


def crawl_opener(own_client: Callable[[str], Any], other_client: Callable[[], Any]) -> Callable[[str], BinaryIO]:
    """`uri -> stream` over local files, `s3://` objects and `https://` URLs, one client per bucket."""
    clients: dict[str, Any] = {}

    def open_fn(uri: str) -> BinaryIO:
        bucket = uri.split("/", 3)[2] if uri.startswith("s3://") else ""
        if bucket not in clients:
            clients[bucket] = crawl_client(uri, own_client, other_client)
        return open_uri(uri, clients[bucket])

    return open_fn


@dataclass(frozen=True)
class Shard:
    crawl: str
    shard: str
    warc_uris: tuple[str, ...]

    @property
    def partition_key(self) -> str:
        return make_partition_key(self.crawl, self.shard)


def list_local_warcs(source_dir: str | Path) -> list[str]:
    """Absolute paths of WARC/WAT files directly under `source_dir`, sorted by name."""
    root = Path(source_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"crawl source directory {str(root)!r} does not exist")
    files = sorted(
        str(p.resolve()) for p in root.iterdir() if p.is_file() and p.name.endswith(WARC_SUFFIXES)
    )
    if not files:
        raise FileNotFoundError(
            f"no WARC files ({', '.join(WARC_SUFFIXES)}) in crawl source directory {str(root)!r}"
        )
    return files


def make_shards(crawl: str, warc_uris: Sequence[str], files_per_shard: int) -> list[Shard]:
    """Shards of K files in listing order; `warc_uris` are `WarcFile`s or plain URIs (path = URI)."""
    validate_crawl_name(crawl)
    if files_per_shard < 1:
        raise ValueError(f"files_per_shard must be >= 1, got {files_per_shard}")
    if len(set(warc_uris)) != len(warc_uris):
        raise ValueError("the WARC listing has duplicate paths")
    shards = [
        Shard(crawl, f"{i // files_per_shard:05d}", tuple(warc_uris[i : i + files_per_shard]))
        for i in range(0, len(warc_uris), files_per_shard)
    ]
    for s in shards:
        make_partition_key(s.crawl, s.shard)  # refuses a key that is not '<crawl>/<digits>'
    return shards


def manifest_table(shards: Sequence[Shard]) -> pa.Table:
    rows = [
        {
            "crawl": s.crawl,
            "shard": s.shard,
            "partition_key": s.partition_key,
            "warc_uri": f.uri if isinstance(f, WarcFile) else f,
            "position": pos,
            "warc_path": f.path if isinstance(f, WarcFile) else f,
        }
        for s in shards
        for pos, f in enumerate(s.warc_uris)
    ]
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def shard_files(manifest: pa.Table, shard: str) -> list[WarcFile]:
    """The files of one shard (crawl path and read URI), in manifest order."""
    rows = [r for r in manifest.to_pylist() if r["shard"] == shard]
    if not rows:
        raise KeyError(f"shard {shard!r} is not in the crawl manifest; re-materialize crawl_manifest")
    return [WarcFile(r.get("warc_path") or r["warc_uri"], r["warc_uri"])
            for r in sorted(rows, key=lambda r: r["position"])]


def shard_uris(manifest: pa.Table, shard: str) -> list[str]:
    """The WARC URIs of one shard, in manifest order."""
    return [f.uri for f in shard_files(manifest, shard)]


def crawl_source_uri(root: str, crawl: str, listing_name: str = "warc.paths.gz") -> str:
    """Where a discovered crawl's files are listed: its `warc.paths.gz` (or `wat.paths.gz`) on
    S3/HTTP or in a local crawl folder, else the local folder itself."""
    root = root.rstrip("/")
    if root.startswith(("s3://", "https://", "http://")):
        return f"{root}/{crawl}/{listing_name}"
    listing = Path(root) / crawl / listing_name
    return str(listing) if listing.is_file() else str(Path(root) / crawl)


def list_crawls(root: str, s3_client: Any = None) -> list[str]:
    """Crawl names under a discovery root, sorted: `s3://bucket/crawl-data/` prefixes (those having a
    `warc.paths.gz` are checked by `has_listing`), or the subdirectories of a local directory."""
    if root.startswith("s3://"):
        names = []
        for _, prefix, page in _s3_pages(root, s3_client, "listing crawls under"):
            names += [p["Prefix"][len(prefix) :].strip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)
    d = Path(root)
    if not d.is_dir():
        raise FileNotFoundError(f"crawl discovery root {root!r} does not exist")
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_listing(root: str, crawl: str, s3_client: Any = None, listing_name: str = "warc.paths.gz") -> bool:
    """Whether a crawl is ready: its listing exists (S3), or its directory has WARC files."""
    if root.startswith("s3://"):
        bucket, _, prefix = root[5:].partition("/")
        key = "/".join(p for p in (prefix.strip("/"), crawl, listing_name) if p)
        try:
            s3_client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:  # botocore ClientError: 404 means "not published yet"
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    d = Path(root) / crawl
    return (d / listing_name).is_file() or any(p.name.endswith(WARC_SUFFIXES) for p in d.iterdir())


def select_crawls(names: Sequence[str], *, newer_than: str = "", only: Sequence[str] = ()) -> list[str]:
    """The crawls discovery may register: an explicit list, else names sorting after `newer_than`
    of the same family (`CC-MAIN-YYYY-WW` names sort by date), never an invalid crawl name."""
    picked = []
    for name in names:
        try:
            validate_crawl_name(name)
        except ValueError:
            continue
        if only:
            if name in only:
                picked.append(name)
        elif name > newer_than and name.startswith(newer_than.rstrip("0123456789-")):
            picked.append(name)
    return sorted(picked)
