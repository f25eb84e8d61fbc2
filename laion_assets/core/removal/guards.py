"""Over-broad removal entries, flagged before they take out a release: a pure function for the
publish hold (a blocking check until explicitly confirmed).

Flagged: a `domain` that is a public suffix (`com`, `co.uk`, `github.io`: the Public Suffix List
bundled with the `tld` package, read offline) or a single label; a `domain` written as a short IP
form (`0.1`, which WHATWG reads as 0.0.0.1 and a naive suffix match would apply to 10.0.0.1); a
`url_prefix` with no host or a host that is a public suffix, or one shorter than
`min_prefix_host_chars` (`https://a`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tld import is_tld

from laion_assets.core.removal.canonical import canonical_host, is_ip_host

MIN_PREFIX_HOST_CHARS = 4
_DOTTED_QUAD = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IP_LIKE = re.compile(r"(?:0x[0-9a-f]+|\d+)(?:\.(?:0x[0-9a-f]+|\d+))*\.?", re.I)


def _public_suffix(host: str) -> bool:
    try:
        return bool(is_tld(host))
    except Exception:  # noqa: BLE001 - the list's parser raises on odd input: not a suffix
        return False


def flag_entry(kind: str, value: str, *, min_prefix_host_chars: int = MIN_PREFIX_HOST_CHARS) -> str | None:
    """Why an entry (raw or canonical value) is over-broad, or None."""
    raw = value.strip()
    if kind == "domain":
        bare = re.sub(r"^[a-z][a-z0-9+.-]*://", "", raw.lower()).removeprefix("*.").split("/")[0]
        if _IP_LIKE.fullmatch(bare) and not _DOTTED_QUAD.fullmatch(bare.rstrip(".")):
            return f"IP-like fragment {bare!r}: not a domain (read as the address {canonical_host(bare)})"
        host = canonical_host(raw)
        if host is None:
            return None  # rejected as not a domain name anyway
        if is_ip_host(host):
            return None  # an exact address: matched exactly, never by suffix
        if _public_suffix(host):
            return f"public suffix {host!r}: would remove every site under it"
        if "." not in host:
            return f"single label {host!r}: would remove every host under it"
        return None
    if kind == "url_prefix":
        m = re.match(r"^[a-z][a-z0-9+.-]*://([^/?#]*)", raw, re.I)
        netloc = m.group(1).rsplit("@", 1)[-1] if m else ""
        if not netloc:
            return "prefix without a host: would remove every URL"
        host = canonical_host(raw) or netloc
        if _public_suffix(host):
            return f"prefix host {host!r} is a public suffix"
        if len(netloc) < min_prefix_host_chars and "/" not in raw[m.end():m.end() + 1]:
            return f"prefix {raw[:40]!r} ends inside a {len(netloc)}-char host"
    return None


def flag_entries(entries: Iterable[dict], *, min_prefix_host_chars: int = MIN_PREFIX_HOST_CHARS) -> list[dict]:
    """The over-broad ones of `entries` (dicts with kind, value and optionally source, line):
    each with its `reason`. Hash and PDQ entries are never flagged (they name one image or URL)."""
    out = []
    for e in entries:
        reason = flag_entry(e["kind"], e["value"], min_prefix_host_chars=min_prefix_host_chars)
        if reason is not None:
            out.append({**e, "reason": reason})
    return out
