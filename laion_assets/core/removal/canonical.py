"""One canonical form of a URL and of a host, so that removal entries match every spelling of a row.

Rows and entries are compared only in this form: it is computed once per kept row (the filter stage
writes `url_canonical` / `host_canonical`) and once per entry (the removal list stores the canonical
value and its `host`), so dbt and the release checks compare columns and never re-implement it.

The form is the WHATWG URL serialisation (the `ada-url` library, the C++ parser browsers' rules are
tested against): scheme and host lower-cased, IDNA hosts in punycode (`bücher.example` is
`xn--bcher-kva.example`), full-width and ideographic dots read as dots, default ports dropped, IPv4
hosts in every form (`0x7f.1`, `2130706433`, `0177.0.0.1`) as dotted decimal. On top of WHATWG:
trailing dots of the host are dropped (`example.com.` is `example.com`), percent-escapes of
unreserved characters (RFC 3986 2.3: letters, digits, `-._~`) are decoded and every other escape is
upper-cased (`%7e` and `~`, `%2f` and `%2F` are one spelling each), and the fragment is dropped (it
never changes what is fetched). The scheme stays part of the URL: `http://` and `https://` URLs are
different URLs (a `domain` entry covers both).

Hosts that are IP addresses are never matched by domain suffix (`0.1` must not take out `10.0.0.1`):
`is_ip_host` says which canonical hosts are; `IP_HOST_PATTERN` is the same test for SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ada_url
import pyarrow as pa

from laion_assets.core.extract.urls import clean_url_string

# Canonical IPv4 hosts are always dotted decimal, IPv6 always in brackets (WHATWG host serialisation).
IP_HOST_PATTERN = r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|\[[0-9a-f:.]+\]"
_IP_HOST = re.compile(IP_HOST_PATTERN)
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SCHEMES = ("http://", "https://")


def _escape(m: re.Match) -> str:
    byte = int(m.group(1), 16)
    return chr(byte) if byte in _UNRESERVED else "%" + m.group(1).upper()


def normalize_escapes(text: str) -> str:
    """Unreserved characters decoded, every other percent-escape upper-cased."""
    return _ESCAPE.sub(_escape, text) if "%" in text else text


def _href(url: str) -> str | None:
    """ada's WHATWG serialisation of an http(s) URL, without its fragment; None when not one."""
    if "\t" in url or "\n" in url or "\r" in url or url[:1] <= " " or url[-1:] <= " ":
        url = clean_url_string(url)
    try:
        href = ada_url.normalize_url(url)
    except ValueError:
        return None
    if not href.startswith(_SCHEMES):
        return None
    return href.split("#", 1)[0] if "#" in href else href


def _split_host(href: str) -> tuple[int, int]:
    """[start, end) of the host in a serialised http(s) URL (after any userinfo, before any port)."""
    start = href.index("//") + 2
    end = href.index("/", start)  # special schemes always serialise a path
    at = href.rfind("@", start, end)
    if at >= 0:
        start = at + 1
    if href[start] == "[":
        return start, href.index("]", start) + 1
    colon = href.find(":", start, end)
    return start, colon if colon >= 0 else end


def canonical_parts(url: str) -> tuple[str | None, str | None]:
    """(canonical URL, canonical host) of an http(s) URL; (None, None) when it is not one."""
    href = _href(url)
    if href is None:
        return None, None
    start, end = _split_host(href)
    host = href[start:end]
    if host.endswith("."):
        host = host.rstrip(".")
        if not host:
            return None, None
        href = href[:start] + host + href[end:]
    if "%" in href:
        href = normalize_escapes(href)
    return href, host


def canonical_url(url: str) -> str | None:
    return canonical_parts(url)[0]


def canonical_host(value: str) -> str | None:
    """The canonical host of a bare host name (`Example.COM.`, `*.bücher.example`, `0x7f.1`) or of
    a URL's host; None when it is not a host an http(s) URL can have."""
    value = value.strip()
    scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value)
    if scheme:
        value = re.split(r"[/?#]", value[scheme.end():], maxsplit=1)[0]  # a URL: its authority only
    value = value.removeprefix("*.")
    if not value or any(c in value for c in "/?#@\\"):
        return None  # a path or userinfo: not a bare host
    return canonical_parts("http://" + value + "/")[1]


def is_ip_host(host: str) -> bool:
    """The canonical host is an IPv4 or IPv6 address (never matched by domain suffix)."""
    return _IP_HOST.fullmatch(host) is not None


def canonical_columns(urls: Iterable[str | None]) -> tuple[pa.Array, pa.Array]:
    """(url_canonical, host_canonical) for a column of URLs: NULL where a URL has no canonical form."""
    out_urls: list[str | None] = []
    out_hosts: list[str | None] = []
    for url in urls:
        u, h = canonical_parts(url) if url is not None else (None, None)
        out_urls.append(u)
        out_hosts.append(h)
    return pa.array(out_urls, pa.string()), pa.array(out_hosts, pa.string())
