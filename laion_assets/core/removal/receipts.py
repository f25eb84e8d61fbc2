"""Receipts: what a publisher shows for every filed removal request, including the ones that
matched nothing or were rejected.

A receipt (`removal/receipts/<request_id>.json`) names the file, its source and sha256, its entries
by kind, the entries it refused (line and reason, never the value: a hash list stays a hash list),
and once it landed: the version of every release variant it landed in, the rows it removed there,
the rows it matched in the warehouse (overlaps with other sources included), and when. Status:
`pending` (filed, not yet in a published version), `landed`, or `rejected` (the file as a whole was
refused; its reason says why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from laion_assets.core.schemas.receipts import RECEIPTS_SCHEMA
from laion_assets.core.storage.layout import REMOVAL_RECEIPTS_DIR

PENDING, LANDED, REJECTED = "pending", "landed", "rejected"
RECEIPTS_DIR = REMOVAL_RECEIPTS_DIR


def receipt_path(request_id: str) -> str:
    return f"{RECEIPTS_DIR}/{request_id}.json"


def initial_receipt(record: Mapping, *, now: str, previous: Mapping | None = None) -> dict:
    """The receipt of a request as read (before any publish): pending, or rejected with its reason.
    A receipt that already says `landed` is kept as it is (the same file is the same request)."""
    if previous is not None and previous.get("status") == LANDED:
        return dict(previous)
    status = REJECTED if record["status"] == "rejected" else PENDING
    return {**record, "status": status, "filed_at": (previous or {}).get("filed_at", now),
            "landed_at": None, "versions": {}, "rows_removed": {}, "rows_matched": None}


def landed_receipt(receipt: Mapping, manifests: Mapping[str, Mapping], rows_matched: Mapping[str, int] | None, *,
                   now: str, applied: bool = False) -> dict:
    """`receipt` after a publish whose variants' manifests are `manifests` ({variant: manifest}):
    landed when every variant's manifest lists the request's source with all its accepted entries,
    or, with `applied` (those versions were built and checked against the list holding this
    request), in any case: a variant whose version did not change keeps its older manifest, and
    the request removed none of its rows (rows_removed 0 there)."""
    if receipt["status"] == REJECTED or not manifests:
        return dict(receipt)
    source, n = receipt["source"], receipt["entries_accepted"]
    found = {v: m.get("removal", {}).get("sources", {}).get(source) for v, m in manifests.items()}
    listed = {v: s for v, s in found.items() if s is not None and s.get("entries") == n}
    if len(listed) < len(found) and not applied:
        return dict(receipt)
    versions = {v: m["version"] for v, m in sorted(manifests.items())}
    same = receipt["status"] == LANDED and receipt.get("versions") == versions
    return {**receipt, "status": LANDED, "versions": versions,
            "rows_removed": {v: int(listed[v].get("rows_removed", 0)) if v in listed else 0 for v in sorted(found)},
            # Counted once, by the publish it lands in: the purge after it takes the matched rows out of
            # the kept pairs the warehouse matches, so a later recount would say 0. `rows_matched`
            # None (a takedown_job run, whose warehouse predates the removal list): not counted (null).
            "rows_matched": (receipt.get("rows_matched") if receipt["status"] == LANDED or rows_matched is None
                             else int(rows_matched.get(source, 0))),
            "landed_at": receipt["landed_at"] if same else now}


def receipts_table(receipts: Sequence[Mapping]) -> pa.Table:
    """One row per (request, variant) it landed in; one row (variant NULL) for the others."""
    rows = []
    for r in sorted(receipts, key=lambda r: r["request_id"]):
        base = {k: r.get(k) for k in ("request_id", "file", "source", "status", "reason", "filed_at", "landed_at",
                                      "entries_accepted", "rows_matched")}
        base["entries_rejected"] = len(r.get("entries_rejected", []))
        variants = r.get("versions") or {None: None}
        for variant, version in variants.items():
            rows.append({**base, "variant": variant, "version": version,
                         "rows_removed": (r.get("rows_removed") or {}).get(variant)})
    return pa.Table.from_pylist(rows, schema=RECEIPTS_SCHEMA)


def receipts_summary(receipts: Sequence[Mapping]) -> list[dict]:
    """Rows the dataset card prints, one per request, newest landing first: request id, file,
    status, entries accepted / rejected, rows removed per variant, versions, when. No values."""
    out = []
    for r in receipts:
        out.append({
            "request_id": r["request_id"], "file": r["file"], "status": r["status"],
            "reason": r.get("reason"),
            "entries": f"{r.get('entries_accepted', 0)} accepted, {len(r.get('entries_rejected', []))} rejected",
            "rows_removed": ", ".join(f"{v}: {n}" for v, n in sorted((r.get("rows_removed") or {}).items())) or "-",
            "versions": ", ".join(f"{v} {ver}" for v, ver in sorted((r.get("versions") or {}).items())) or "-",
            "landed_at": r.get("landed_at") or "-",
        })
    landed = sorted((r for r in out if r["landed_at"] != "-"), key=lambda r: r["landed_at"], reverse=True)
    return landed + sorted((r for r in out if r["landed_at"] == "-"), key=lambda r: r["file"])
