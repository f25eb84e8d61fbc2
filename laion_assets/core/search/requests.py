"""Filing a removal request from the search page: ONE function writes a request file in the takedown
path's existing format (core/removal/entries.py `request_source`: `<name>.csv` with kind, value, listed_on),
under `removal/requests/`, where the removal sensor picks it up and re-derives every release.

The row is named by hashes only (its URL's sha256 and, when known, its image's sha256), never by
URL. `reason` and `contact` ride along as extra CSV columns (the loader reads kind/value/listed_on
and ignores the rest) so a reviewer of the request file sees them. The request id is derived from
the file's bytes, so the same request filed twice is one file and one id.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re

from laion_assets.core.removal.entries import url_sha256
from laion_assets.core.search.layout import REMOVAL_REQUESTS_DIR

MAX_REASON_CHARS = 2000
MAX_CONTACT_CHARS = 320
REQUEST_PREFIX = "search-"
_ID = re.compile(r"^rq-[0-9a-f]{16}$")


class BadRemovalRequest(ValueError):
    """A request that cannot be filed (the reason is the message); nothing was written."""


def _clean(label: str, value: str, limit: int) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise BadRemovalRequest(f"{label} is required")
    if len(value) > limit:
        raise BadRemovalRequest(f"{label} is over {limit} characters")
    return value


def request_file_bytes(row: dict, reason: str, contact: str, listed_on: str) -> bytes:
    reason = _clean("reason", reason, MAX_REASON_CHARS)
    contact = _clean("contact", contact, MAX_CONTACT_CHARS)
    if not row.get("URL"):
        raise BadRemovalRequest("the row has no URL")
    entries = [("url_sha256", url_sha256(row["URL"]))]
    if row.get("sha256"):
        entries.append(("image_sha256", str(row["sha256"]).lower()))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "value", "listed_on", "reason", "contact"])
    for kind, value in entries:
        w.writerow([kind, value, listed_on, reason, contact])
    return buf.getvalue().encode("utf-8")


def request_id(data: bytes) -> str:
    return "rq-" + hashlib.sha256(data).hexdigest()[:16]


def request_relpath(rid: str) -> str:
    if not _ID.match(rid):
        raise BadRemovalRequest(f"not a request id: {rid!r}")
    return f"{REMOVAL_REQUESTS_DIR}/{REQUEST_PREFIX}{rid}.csv"


def file_removal_request(st, row: dict, *, reason: str, contact: str,
                         today: datetime.date | None = None) -> tuple[str, str]:
    """Write the request for `row` (a release row: URL, sha256) and return (request id, relpath)."""
    listed_on = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
    data = request_file_bytes(row, reason, contact, listed_on)
    rid = request_id(data)
    relpath = request_relpath(rid)
    if not st.exists(relpath):
        st.write_bytes(data, relpath)
    return rid, relpath
