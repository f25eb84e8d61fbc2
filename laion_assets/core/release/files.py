"""Published releases: LAION-compatible parquet parts, a dataset card and a checksummed manifest.

A release is one *variant* (an NSFW policy, e.g. `research` and `research-safe`) of one build. Its
parts are content-defined and written reproducibly (core.release_writer), and its version hashes
them: publishing the same rows twice gives the same version and byte-identical files, any change
(a removal applied, a re-score, a new crawl) gives a new one. The diff against the variant's
previous version names removed rows only by hashes (sha256 of the URL, SAMPLE_ID).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.lib.ids import file_sha256
from laion_assets.core.release.card import dataset_card
from laion_assets.core.release.rules import PLACEHOLDER_MIN_URLS
from laion_assets.core.release.writer import PART_WRITER, ReleaseRows, release_version
from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY, entry_counts
from laion_assets.core.removal.requests import card_requests
from laion_assets.core.schemas.release import RELEASE_COLUMNS, RELEASE_SCHEMA
from laion_assets.core.lib.validation import ConfigError, require_range

DEFAULT_ROWS_PER_PART = 1_000_000


@dataclass(frozen=True)
class ReleaseVariant:
    """Rows with punsafe over `punsafe_max` (or without a punsafe) are dropped as `nsfw_policy`."""

    name: str
    punsafe_max: float
    # SemDeDup (core/release/semantic.py): drop rows whose image embedding has cosine >= this with a
    # better-scored row of its cluster, as `semantic_duplicate`. None: off.
    semdedup_min_cosine: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError("variant name", self.name, "letters, digits, '-' and '_'")
        require_range(f"variant {self.name} punsafe_max", self.punsafe_max, 0.0, 1.0)
        if self.semdedup_min_cosine is not None:
            require_range(f"variant {self.name} semdedup_min_cosine", self.semdedup_min_cosine, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """The manifest's `variant` (semdedup only when on, so earlier manifests stay as they were)."""
        out: dict[str, Any] = {"name": self.name, "punsafe_max": self.punsafe_max}
        if self.semdedup_min_cosine is not None:
            out["semdedup_min_cosine"] = self.semdedup_min_cosine
        return out


DEFAULT_VARIANTS = (ReleaseVariant("research", 0.95), ReleaseVariant("research-safe", 0.45))


def size_category(n: int) -> str:
    """Hugging Face `size_categories` bucket."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if n < bound), "1B<n<10B")


def build_facts(con: duckdb.DuckDBPyConnection, entries: pa.Table, *, published: int, warehouse: str = "wh",
                requests: Sequence[dict] = ()) -> dict:
    """What the build knows beyond the rows, from the warehouse's dbt models (schema `warehouse`):
    the funnel before any variant's NSFW policy, removal sources with counts, the filed removal
    requests (`requests`: `removal/requests.json`'s records), link rot, filters."""
    drops = dict(con.sql(f"SELECT reason, count(*) FROM {warehouse}.drop_log GROUP BY 1 ORDER BY 1").fetchall())
    total = sum(drops.values()) + published
    sources = removal_sources(entries, drops)
    funnel_row = con.sql(f"SELECT * FROM {warehouse}.stats_funnel").to_arrow_table().to_pylist()[0]
    rot = {r.removeprefix("not_downloaded:"): n for r, n in drops.items() if r.startswith("not_downloaded:")}
    return {
        "drops": drops,
        "pairs_extracted": total,
        "pipeline_stats": funnel_row,
        "removal": {"sources": sources, "rows_removed": sum(s["rows_removed"] for s in sources.values()),
                    "requests": card_requests(requests, {s: v["rows_removed"] for s, v in sources.items()})},
        "link_rot": {"pairs": total, "failed": sum(rot.values()), "share": sum(rot.values()) / max(total, 1),
                     "by_reason": {r: n / max(total, 1) for r, n in sorted(rot.items())}},
        "filters": {"placeholder_min_urls": PLACEHOLDER_MIN_URLS, "pdq_max_distance": PDQ_MAX_DISTANCE,
                    "pdq_min_quality": PDQ_MIN_QUALITY,
                    "dedup": ["url_text", "image_sha256"], "threshold": "per model and language (column threshold)"},
        "license": {"metadata": "CC-BY-4.0 (this table of URLs and captions)",
                    "images": "not included; each image belongs to its owner (LICENSE column: page-declared)"},
    }


def removal_sources(entries: pa.Table, drops: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per removal source: entries (by kind), rows removed (drop-log reason `removal:<source>`), latest listing."""
    dates: dict[str, str] = {}
    for s, d in zip(entries.column("source").to_pylist(), entries.column("listed_on").to_pylist()):
        if d:
            dates[s] = max(d, dates.get(s, d))
    return {
        s: {"entries": sum(k.values()), "kinds": k, "rows_removed": drops.get(f"removal:{s}", 0),
            "listed_on": dates.get(s)}
        for s, k in entry_counts(entries).items()
    }


def write_release_files(
    out_dir: Path,
    *,
    files: list[dict[str, Any]],
    version: str,
    variant: ReleaseVariant,
    described: dict[str, Any],
    build: dict[str, Any],
) -> dict[str, Any]:
    """manifest.json and README.md next to the parts already in `out_dir`.

    `build`: what the release pipeline knows beyond the rows (funnel, removal sources, filters,
    link rot); it must hold no time or local path, so a rebuild gives byte-identical files.
    """
    rows = sum(f["rows"] for f in files)
    manifest = {
        "version": version,
        "variant": variant.describe(),
        "rows": rows,
        "columns": [{"name": name, "type": str(typ), "nullable": nullable, "description": desc}
                    for name, (typ, nullable, desc) in RELEASE_COLUMNS.items()],
        "files": files,
        "parts": {"split": "content-defined: part i of n holds SAMPLE_ID in [i*2^63/n, (i+1)*2^63/n), sorted",
                  **PART_WRITER},
        "size_category": size_category(rows),
        **described,
        **build,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out_dir / "README.md").write_text(dataset_card(manifest))
    return manifest


def write_release(
    table: pa.Table,
    out_dir: Path,
    *,
    variant: ReleaseVariant,
    build: dict[str, Any],
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
) -> dict[str, Any]:
    """A whole release of `table` (release columns, NSFW policy applied here) into `out_dir`:
    parts, manifest.json, README.md. Returns the manifest (its `version` included)."""
    with ReleaseRows.from_table(table) as rows:
        files = rows.write_parts(variant.punsafe_max, out_dir, rows_per_part)
        version = release_version(variant.name, files)
        return write_release_files(out_dir, files=files, version=version, variant=variant,
                                   described=rows.describe(variant.punsafe_max), build=build)


def verify_release_dir(release_dir: Path, verified: frozenset[str] = frozenset()) -> list[str]:
    """Problems with a written release (empty when sound): schema equals the documented one, file
    checksums and row counts match the manifest, the card's counts equal the table's, the funnel
    adds up row for row. `verified`: parts linked from a version verified when it was published
    (an incremental re-derive): their size is compared, nothing of them is read again."""
    problems: list[str] = []
    manifest = json.loads((release_dir / "manifest.json").read_text())
    card = (release_dir / "README.md").read_text()
    rows = 0
    for f in manifest["files"]:
        path = release_dir / f["path"]
        if f["path"] in verified:
            if path.stat().st_size != f["bytes"]:
                problems.append(f"{f['path']}: size differs from manifest")
            rows += f["rows"]
            continue
        if file_sha256(path) != f["sha256"]:
            problems.append(f"{f['path']}: checksum differs from manifest")
        pf = pq.ParquetFile(path)
        if not pf.schema_arrow.equals(RELEASE_SCHEMA):
            problems.append(f"{f['path']}: schema differs from RELEASE_SCHEMA")
        rows += pf.metadata.num_rows
    if rows != manifest["rows"]:
        problems.append(f"parquet holds {rows} rows, manifest says {manifest['rows']}")
    if f"- rows: **{rows}**" not in card:
        problems.append(f"card does not state the table's {rows} rows")
    funnel = manifest.get("funnel")
    if funnel is not None:
        if sum(funnel["dropped"].values()) + rows != funnel["pairs_extracted"]:
            problems.append(f"funnel does not add up: {sum(funnel['dropped'].values())} dropped + {rows} "
                            f"published != {funnel['pairs_extracted']} extracted")
        for reason, n in funnel["dropped"].items():
            if f"| `{reason}` | {n} |" not in card:
                problems.append(f"card does not state {n} rows dropped as {reason}")
    for name, src in manifest.get("removal", {}).get("sources", {}).items():
        if f"| {name} | {src['entries']} | {src['rows_removed']} |" not in card:
            problems.append(f"card's counts for removal source {name} differ from the manifest")
    return problems
