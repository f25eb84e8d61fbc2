"""Filed removal requests as records: each file under `removal/requests/` is one request with an id.

A request is read on its own: a file that cannot be used as a whole (bad encoding, a broken CSV, an
unknown kind in its name, no entries) is rejected with its reason and applies nothing, and every
other request still applies. The id is derived from the file name and bytes, so filing the same file
again is the same request and changing a file is a new one (its receipt says which).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from laion_assets.core.removal.entries import (
    REJECTED_SCHEMA,
    REMOVAL_SCHEMA,
    entry_counts,
    load_source_isolated,
    request_source,
)
from laion_assets.core.removal.strict_csv import SourceRejected
from laion_assets.core.storage.layout import REMOVAL_REQUESTS_INDEX

ACCEPTED, REJECTED = "accepted", "rejected"


def request_id(file_name: str, data: bytes) -> str:
    """`rq-` and 16 hex chars of sha256(file name, NUL, bytes): stable for a file, new when it changes."""
    return "rq-" + hashlib.sha256(file_name.encode() + b"\0" + data).hexdigest()[:16]


@dataclass
class FiledRequest:
    """One request file, read. `rejected` lists refused entries by line and reason, never values."""

    request_id: str
    file: str
    sha256: str
    status: str
    reason: str | None
    source: str | None
    kinds: dict[str, int] = field(default_factory=dict)
    entries: pa.Table = field(default_factory=REMOVAL_SCHEMA.empty_table)
    rejected: pa.Table = field(default_factory=REJECTED_SCHEMA.empty_table)

    def record(self) -> dict:
        """What is written to `removal/requests.json` and receipts: counts, lines, reasons; no values."""
        return {
            "request_id": self.request_id, "file": self.file, "sha256": self.sha256, "status": self.status,
            "reason": self.reason, "source": self.source, "kinds": self.kinds,
            "entries_accepted": self.entries.num_rows,
            "entries_rejected": [{"line": r["line"], "kind": r["kind"], "reason": r["reason"]}
                                 for r in self.rejected.to_pylist()],
        }


def read_request(file_name: str, uri: str, data: bytes) -> FiledRequest | None:
    """The request a filed file makes (None: not a request file, e.g. hidden or README)."""
    rid, digest = request_id(file_name, data), hashlib.sha256(data).hexdigest()

    def refused(reason: str, source: str | None = None) -> FiledRequest:
        return FiledRequest(rid, file_name, digest, REJECTED, reason, source)

    try:
        source = request_source(file_name, uri)
    except SourceRejected as e:
        return refused(str(e))
    if source is None:
        return None
    if not data.strip():
        return refused("empty file", source.name)
    entries, rejected, reason = load_source_isolated(source, data)
    if reason is not None:
        return refused(reason, source.name)
    if entries.num_rows == 0:
        why = "every entry rejected" if rejected.num_rows else "no entries"
        return FiledRequest(rid, file_name, digest, REJECTED, why, source.name, rejected=rejected)
    kinds = entry_counts(entries).get(source.name, {})
    return FiledRequest(rid, file_name, digest, ACCEPTED, None, source.name, kinds, entries, rejected)


def read_requests(files: Sequence[tuple[str, str]], read: Callable[[str], bytes]) -> list[FiledRequest]:
    """Every filed request of (relpath, uri) pairs, each read on its own; `read(relpath)` gives bytes.

    A file that cannot even be read is a rejected request too (its reason says why)."""
    out = []
    for relpath, uri in sorted(files):
        name = relpath.rsplit("/", 1)[-1]
        try:
            data = read(relpath)
        except OSError as e:
            out.append(FiledRequest(request_id(name, b""), name, "", REJECTED, f"unreadable: {type(e).__name__}", None))
            continue
        request = read_request(name, uri, data)
        if request is not None:
            out.append(request)
    return out


def read_requests_index(st) -> list[dict]:
    """The records `removal_list` wrote for every filed request (`removal/requests.json`; [] when
    none was ever filed). `st`: a `Storage`."""
    return json.loads(st.read_bytes(REMOVAL_REQUESTS_INDEX)) if st.exists(REMOVAL_REQUESTS_INDEX) else []


def card_requests(records: Sequence[dict], rows_removed: dict[str, int]) -> list[dict]:
    """What a release's card and manifest say of the filed requests it was built with, one per
    request in file order: id (the receipt's), file, accepted or rejected (and why), entries
    accepted and rejected, and rows its source removed from the build (`rows_removed`: by source).
    No entry values; times stay in the receipts, so the same rows and requests give the same card."""
    return [{"request_id": r["request_id"], "file": r["file"], "status": r["status"], "reason": r.get("reason"),
             "entries_accepted": r.get("entries_accepted", 0), "entries_rejected": len(r.get("entries_rejected", [])),
             "rows_removed": rows_removed.get(r.get("source"), 0) if r["status"] == ACCEPTED else 0}
            for r in sorted(records, key=lambda r: (r["file"], r["request_id"]))]


def applied_tables(requests: Sequence[FiledRequest]) -> tuple[pa.Table, pa.Table]:
    """(entries, rejected) of every request: accepted requests' entries; every refused entry, and one
    row (line NULL) per rejected file with its reason."""
    entries = [r.entries for r in requests if r.status == ACCEPTED]
    rejected = [r.rejected for r in requests]
    files = [{"source": r.source or r.file, "line": None, "kind": None, "reason": f"file rejected: {r.reason}"}
             for r in requests if r.status == REJECTED]
    rejected.append(pa.Table.from_pylist(files, schema=REJECTED_SCHEMA))
    return (pa.concat_tables([REMOVAL_SCHEMA.empty_table(), *entries]),
            pa.concat_tables([REJECTED_SCHEMA.empty_table(), *rejected]))
