"""Filing a removal request from the search page: ONE function writes a request file in the takedown
path's existing format (core/removal/entries.py `request_source`: `<name>.csv` with kind, value, listed_on),
under `removal/requests/`, where the removal sensor picks it up and re-derives every release.

The row is named by hashes only (its URL's sha256 and, when known, its image's sha256), never by
URL. `reason` and `contact` ride along as extra CSV columns (the loader reads kind/value/listed_on
and ignores the rest) so a reviewer of the request file sees them. The file is named by a digest of
its bytes (`search-<16 hex>.csv`), so the same request filed twice is one file. The id the filer
gets is the takedown path's own receipt id (`core/removal/requests.py` `request_id`, `rq-...`),
and its pending receipt is written at once (`removal/receipts/<id>.json`), as
`python -m laion_assets.takedown file` does: the receipt later says where the request landed.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import re

from laion_assets.core.removal.entries import url_sha256
from laion_assets.core.removal.receipts import initial_receipt, receipt_path
from laion_assets.core.removal.requests import ACCEPTED, read_request
from laion_assets.core.search.layout import REMOVAL_REQUESTS_DIR

MAX_REASON_CHARS = 2000
MAX_CONTACT_CHARS = 320
REQUEST_PREFIX = "search-"
_DIGEST = re.compile(r"^[0-9a-f]{16}$")


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


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def request_relpath(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise BadRemovalRequest(f"not a request file digest: {digest!r}")
    return f"{REMOVAL_REQUESTS_DIR}/{REQUEST_PREFIX}{digest}.csv"


def file_removal_request(st, row: dict, *, reason: str, contact: str,
                         today: datetime.date | None = None) -> tuple[str, str]:
    """Write the request for `row` (a release row: URL, sha256) and its pending receipt; return
    (the takedown path's request id `rq-...`, the request file's relpath)."""
    listed_on = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
    data = request_file_bytes(row, reason, contact, listed_on)
    relpath = request_relpath(content_digest(data))
    name = relpath.rsplit("/", 1)[-1]
    # Read as the removal list will read it: what is filed is exactly what the takedown path accepts.
    request = read_request(name, st.uri(relpath), data)
    if request is None or request.status != ACCEPTED:
        raise BadRemovalRequest(f"the takedown path would refuse this request: {request and request.reason}")
    if not st.exists(relpath):
        st.write_bytes(data, relpath)
    receipt = receipt_path(request.request_id)
    previous = json.loads(st.read_bytes(receipt)) if st.exists(receipt) else None
    if previous is None:  # a receipt already there (pending or landed) is the same request's: kept
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        st.write_bytes(json.dumps(initial_receipt(request.record(), now=now), indent=2, sort_keys=True).encode(),
                       receipt)
    return request.request_id, relpath
