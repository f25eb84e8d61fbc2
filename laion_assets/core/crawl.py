"""Crawl manifests: which WARC files a crawl has, grouped into shards of K files.

A shard is the unit of work (one Dagster partition). Shards are numbered by position in the sorted
file list, so the same listing always gives the same shards and a re-run never reshuffles work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from laion_assets.core.quality import SqlCheck
from laion_assets.core.storage import make_partition_key, validate_crawl_name

WARC_SUFFIXES = (".warc", ".warc.gz", ".wat", ".wat.gz", ".warc.wat.gz")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("partition_key", pa.string(), nullable=False),
        pa.field("warc_uri", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
    ]
)


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
            "warc_uri": uri,
            "position": pos,
        }
        for s in shards
        for pos, uri in enumerate(s.warc_uris)
    ]
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def shard_uris(manifest: pa.Table, shard: str) -> list[str]:
    """The WARC URIs of one shard, in manifest order."""
    rows = [r for r in manifest.to_pylist() if r["shard"] == shard]
    if not rows:
        raise KeyError(f"shard {shard!r} is not in the crawl manifest; re-materialize crawl_manifest")
    return [r["warc_uri"] for r in sorted(rows, key=lambda r: r["position"])]


def manifest_path(crawl: str) -> str:
    return f"manifests/{crawl}.parquet"


CHECKS = [
    SqlCheck(
        name="manifest_unique_files",
        description="Each WARC file is listed once, in exactly one shard.",
        sql="SELECT warc_uri, count(*) AS n FROM manifest GROUP BY warc_uri HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="manifest_shard_sizes",
        description="Every shard of a crawl but its last holds the same number of files (K), and "
        "the last holds at most K.",
        sql="""
        WITH s AS (SELECT crawl, shard, count(*) AS n FROM manifest GROUP BY crawl, shard),
             m AS (SELECT crawl, max(n) AS k, max(shard) AS last_shard FROM s GROUP BY crawl)
        SELECT s.crawl, s.shard, s.n, m.k FROM s JOIN m USING (crawl)
        WHERE s.shard <> m.last_shard AND s.n <> m.k
        """,
    ),
]
