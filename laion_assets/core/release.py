"""Published releases: LAION-compatible parquet parts, a dataset card and a checksummed manifest.

A release is content-addressed: its version is a hash of the rows it holds, so publishing the same
data twice gives the same version (a re-run neither duplicates nor drops a release), and any change
(a removal request applied, a new crawl) gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.core.ids import sample_id
from laion_assets.core.quality import SqlCheck
from laion_assets.core.schemas import RELEASE_SCHEMA

DEFAULT_ROWS_PER_PART = 1_000_000


def to_release_table(published: pa.Table) -> pa.Table:
    """Map the published model's columns (dbt `published_pairs`) onto LAION's column names."""
    n = published.num_rows
    urls, texts = published.column("url").to_pylist(), published.column("text").to_pylist()
    cols: dict[str, Any] = {
        "SAMPLE_ID": pa.array([sample_id(u, t) for u, t in zip(urls, texts)], pa.int64()),
        "URL": published.column("url"),
        "TEXT": published.column("text"),
        "HEIGHT": published.column("height"),
        "WIDTH": published.column("width"),
        "LICENSE": published.column("license"),
        "NSFW": published.column("nsfw"),
        "punsafe": published.column("punsafe"),
        "similarity": published.column("similarity"),
        "LANGUAGE": published.column("language"),
        "hash": published.column("sha256"),
        "crawl": published.column("crawl"),
        "shard": published.column("shard"),
        "warc_path": published.column("warc_path"),
        "warc_offset": published.column("warc_offset"),
        "page_url": published.column("page_url"),
        "fetched_at": published.column("fetched_at"),
        "model_id": published.column("model_id"),
    }
    arrays = [pc.cast(cols[f.name], f.type) if n else pa.array([], f.type) for f in RELEASE_SCHEMA]
    table = pa.Table.from_arrays(arrays, schema=RELEASE_SCHEMA)
    return table.sort_by([("SAMPLE_ID", "ascending")])


def release_version(table: pa.Table) -> str:
    """Hash of every column of every row (the table is sorted by SAMPLE_ID): same data, same version.

    A re-score with another model, a removal applied or a new crawl all give a new version.
    """
    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks(), max_chunksize=1 << 16)
    h.update(sink.getvalue().to_pybytes())
    return "r-" + h.hexdigest()[:12]


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    rows: int
    parts: list[str]
    manifest: dict[str, Any]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_release(
    table: pa.Table,
    out_dir: Path,
    *,
    version: str,
    provenance: dict[str, Any],
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
) -> ReleaseInfo:
    """Write parts, manifest.json and README.md into `out_dir` (a fresh staging directory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts: list[str] = []
    files: list[dict[str, Any]] = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_part)):
        name = f"part-{i:05d}.parquet"
        chunk = table.slice(start, rows_per_part)
        pq.write_table(chunk, out_dir / name, compression="zstd")
        parts.append(name)
        files.append(
            {"path": name, "rows": chunk.num_rows, "bytes": (out_dir / name).stat().st_size,
             "sha256": _sha256_file(out_dir / name)}
        )
    languages = Counter(table.column("LANGUAGE").to_pylist())
    crawls = Counter(table.column("crawl").to_pylist())
    manifest = {
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": table.num_rows,
        "columns": [f.name for f in RELEASE_SCHEMA],
        "files": files,
        "rows_by_crawl": dict(sorted(crawls.items())),
        "rows_by_language": {str(k): v for k, v in sorted(languages.items(), key=lambda kv: -kv[1])},
        **provenance,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out_dir / "README.md").write_text(dataset_card(manifest))
    return ReleaseInfo(version, table.num_rows, parts, manifest)


def dataset_card(manifest: dict[str, Any]) -> str:
    by_crawl = "\n".join(f"| {c} | {n} |" for c, n in manifest["rows_by_crawl"].items()) or "| - | 0 |"
    by_lang = "\n".join(
        f"| {lang} | {n} |" for lang, n in list(manifest["rows_by_language"].items())[:20]
    ) or "| - | 0 |"
    stats = manifest.get("pipeline_stats", {})
    stats_rows = "\n".join(f"| {k} | {v} |" for k, v in stats.items()) or "| - | - |"
    return f"""# laion-assets release {manifest['version']}

Image-text pairs (URLs and captions, never the images) extracted from web crawls, kept when a CLIP
model scores the image and its caption as similar. Columns follow LAION's (`URL`, `TEXT`, `WIDTH`,
`HEIGHT`, `similarity`, ...), so img2dataset (`--url_col URL --caption_col TEXT`) and clip-retrieval
read it unchanged. Every row names the WARC record it came from (`crawl`, `warc_path`, `warc_offset`,
`page_url`).

- rows: **{manifest['rows']}**
- created: {manifest['created_at']}
- model: {manifest.get('model_id', 'unknown')}
- files: {len(manifest['files'])} parquet part(s), checksums in `manifest.json`

## Rows by crawl
| crawl | rows |
| --- | --- |
{by_crawl}

## Rows by caption language (top 20)
| language | rows |
| --- | --- |
{by_lang}

## How the rows were chosen
| stage count | value |
| --- | --- |
{stats_rows}

## Safety and removal
Images belong to their owners; this dataset only links to them. Machine-readable opt-outs seen at
crawl or download time were honoured. To have a URL or image removed from every future release,
file a removal request with the URL or the image's sha256 (`hash` column).
"""


FUNNEL_SQL = {
    "pairs_extracted": "SELECT count(*) FROM read_parquet('{root}/*/pairs/*[0-9].parquet')",
    "images_ok": "SELECT count(*) FROM read_parquet('{root}/*/images/*.parquet') WHERE status = 'ok'",
    "pairs_scored": "SELECT count(*) FROM read_parquet('{root}/*/scores/*.parquet') WHERE status = 'scored'",
    "pairs_over_threshold": "SELECT count(*) FROM read_parquet('{root}/*/filtered/*.parquet')",
}


def pipeline_funnel(root: Path | str, register: Callable[[Any], None] | None = None) -> dict[str, int]:
    """How many pairs each stage passed on, over every shard under the storage root.

    `register(con)` lets the connection read the root (the storage's `register_duckdb`, for s3://)."""
    import duckdb

    out: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        if register is not None:
            register(con)
        for name, sql in FUNNEL_SQL.items():
            try:
                out[name] = con.sql(sql.format(root=str(root).replace("'", "''"))).fetchall()[0][0]
            except duckdb.IOException:  # no file of that stage yet
                out[name] = 0
    return out


CHECKS = [
    SqlCheck(
        name="release_unique_pairs",
        description="No (URL, TEXT) pair appears twice in the release.",
        sql="SELECT URL, TEXT, count(*) AS n FROM release GROUP BY URL, TEXT HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="release_similarity_valid",
        description="similarity is a number in [-1, 1] on every row.",
        sql="SELECT SAMPLE_ID, similarity FROM release WHERE similarity IS NULL "
        "OR isnan(similarity) OR similarity < -1 OR similarity > 1",
        blocking=True,
    ),
    SqlCheck(
        name="release_urls_http",
        description="Every URL is an absolute http(s) URL with a host.",
        sql="SELECT SAMPLE_ID, URL FROM release WHERE NOT regexp_matches(URL, '^https?://[^/\\s?#]+')",
        blocking=True,
    ),
    SqlCheck(
        name="release_provenance",
        description="Every row names its crawl, WARC file, record offset and page.",
        sql="SELECT SAMPLE_ID FROM release WHERE crawl IS NULL OR warc_path IS NULL "
        "OR warc_offset IS NULL OR page_url IS NULL",
        blocking=True,
    ),
]
