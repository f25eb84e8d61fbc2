"""Withdraw every offered version that still holds a removed row.

A takedown is not done when `LATEST` moves: each earlier version of the variant that holds a row a
removal list now removes is withdrawn. Its parts are deleted (local or S3, through the `Storage`
protocol) and a tombstone, `releases/<variant>/<version>/WITHDRAWN.json`, says when, why (rows
removed by reason) and which version replaces it; its manifest.json and card stay (they hold no
rows), so the version's history is still readable. Offered versions are those the variant's diffs
and `LATEST` name (every publish that changes a variant writes a diff from its previous version).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import RELEASES_DIR, release_dir, variant_latest

TOMBSTONE = "WITHDRAWN.json"


def tombstone_path(variant: str, version: str) -> str:
    return f"{release_dir(variant, version)}/{TOMBSTONE}"


def known_versions(st: Storage, variant: str) -> list[str]:
    """Every version of the variant its diffs and LATEST name, oldest first (by diff order)."""
    seen: list[str] = []
    for relpath in st.list(f"{RELEASES_DIR}/{variant}/diffs", ".json"):
        old, _, new = relpath.rsplit("/", 1)[-1].removesuffix(".json").partition("__")
        seen += [v for v in (old, new) if v and v not in seen]
    if st.exists(variant_latest(variant)):
        latest = st.read_bytes(variant_latest(variant)).decode().strip()
        if latest not in seen:
            seen.append(latest)
    return seen


def offered_versions(st: Storage, variant: str) -> list[str]:
    """Known versions that still have parts (a withdrawn one has none left)."""
    return [v for v in known_versions(st, variant) if part_paths(st, variant, v)]


def part_paths(st: Storage, variant: str, version: str) -> list[str]:
    return [p for p in st.list(release_dir(variant, version), ".parquet") if p.rsplit("/", 1)[-1].startswith("part-")]


def withdraw_versions(st: Storage, variant: str, replaced_by: str, removed: pa.Table,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """Withdraw each offered version of `variant` (other than `replaced_by`) holding a row of
    `removed` (sample_id, reason). Returns one tombstone per withdrawn version."""
    removed_ids = removed.column("sample_id").combine_chunks().cast(pa.int64())
    reason_of = dict(zip(removed_ids.to_pylist(), removed.column("reason").to_pylist()))
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    out = []
    for version in offered_versions(st, variant):
        if version == replaced_by:
            continue
        parts = part_paths(st, variant, version)
        held: Counter[str] = Counter()
        for part in _parts_that_may_hold(st, variant, version, parts, removed_ids):
            ids = st.read_parquet(part, columns=["SAMPLE_ID"]).column("SAMPLE_ID").combine_chunks()
            hit = ids.filter(pc.is_in(ids, value_set=removed_ids))
            held.update(reason_of[i] for i in hit.to_pylist())
        if not held:
            continue
        tomb = {"variant": variant, "version": version, "withdrawn_at": when, "replaced_by": replaced_by,
                "why": "holds rows that removal lists now remove", "rows_removed_by_reason": dict(sorted(held.items())),
                "parts_deleted": [p.rsplit("/", 1)[-1] for p in parts]}
        st.write_bytes((json.dumps(tomb, indent=2, sort_keys=True) + "\n").encode(), tombstone_path(variant, version))
        st.delete(parts)  # after the tombstone: a crash in between leaves a marked version, re-withdrawn next time
        out.append(tomb)
    return out


def _parts_that_may_hold(st: Storage, variant: str, version: str, parts: list[str], ids: pa.Array) -> list[str]:
    """The parts whose SAMPLE_ID range holds one of `ids` (parts are content-defined ranges, named
    `part-<i>` of the manifest's count): a takedown of k rows reads at most k parts per version, not
    the whole release. Every part when the manifest is missing or names other files."""
    from laion_assets.core.release.writer import part_of

    manifest = f"{release_dir(variant, version)}/manifest.json"
    if not st.exists(manifest):
        return parts
    names = [f["path"] for f in json.loads(st.read_bytes(manifest))["files"]]
    if sorted(p.rsplit("/", 1)[-1] for p in parts) != sorted(names) or names != [f"part-{i:05d}.parquet" for i in range(len(names))]:
        return parts
    wanted = {f"part-{part_of(i, len(names)):05d}.parquet" for i in pc.unique(ids).to_pylist() if i is not None and i >= 0}
    return [p for p in parts if p.rsplit("/", 1)[-1] in wanted]
