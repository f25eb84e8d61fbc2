"""Image URL rules: which attribute gives the URL, resolution against <base href> and the page, validation.

Choice of attribute (documented in docs/extraction.md): a lazy-loading attribute (data-src,
data-original, ...) wins over `src` when present, since `src` then usually holds a placeholder; then
`src`; then, when `src` is missing or a data: placeholder, the largest `srcset` candidate. One row per
<img>, never one per srcset candidate.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urljoin, urlsplit

_STRIP = " \t\n\r\f"
# WHATWG URL parser: leading/trailing C0 controls and spaces are stripped, ASCII tab/newline removed anywhere.
_C0_SPACE = "".join(map(chr, range(0x21)))
_TABNL = re.compile(r"[\t\n\r]")
_NEEDS_QUOTE = re.compile(r"[\x00-\x20\x7f\"<>`]")
# Host: no WHATWG forbidden domain code point (C0 controls, space, # / : < > ? @ [ \ ] ^ | % DEL).
_HOST_OK = re.compile(r"^(?:[^\x00-\x20\x7f/\\?#@:\[\]%<>^|]+|\[[0-9A-Fa-f:.]+\])$")
# What the blocking `pairs_url_well_formed` check accepts (RE2's \s is [\t\n\f\r ]): every kept URL matches.
_WELL_FORMED = re.compile(r"https?://[^\t\n\f\r /?#]+(?:[/?#][^\t\n\f\r ]*)?")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".bmp", ".jfif", ".tif", ".tiff", ".heic")
# Placeholder file names (the stem, any image extension): what lazy loaders put in `src` until scrolled to.
_PLACEHOLDER_STEM = re.compile(
    r"(?:img[-_]?|image[-_]?)?(?:lazy(?:[-_]?(?:l|load|loader|loading|img|image|placeholder|bg))?"
    r"|placeholder(?:[-_]?(?:img|image))?|pixel|blank|spacer|transparent|trans|1x1|1px|empty|loading|loader"
    r"|ajax[-_]?loader|dummy|clear|grey|gray|no[-_]?image)(?:[-_]?\d+(?:x\d+)?)?"
)


def clean_url_string(url: str) -> str:
    """WHATWG URL pre-processing: strip C0 controls and spaces at both ends, remove tab and newline."""
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TABNL.sub("", url)
    if url and (url[0] <= " " or url[-1] <= " "):
        url = url.strip(_C0_SPACE)
    return url


_PLACEHOLDER_NAME = re.compile(
    "(?:" + _PLACEHOLDER_STEM.pattern + r")(?:\.(?:jpe?g|png|webp|gif|avif|bmp|jfif|tiff?|heic|svg))?(?:[?#].*)?",
    re.S | re.I,
)
_PLACEHOLDER_FIRST = frozenset("ilpbste1adcgnILPBSTEADCGN")  # first letters of every placeholder name


def is_placeholder_image(url: str) -> bool:
    """The URL names a lazy-loading placeholder (blank.gif, lazy-l.png, pixel.png, spacer, 1x1.png, ...).

    Called for most <img>: no copies of the URL, one set test rejects most names before the regex."""
    q = url.find("?")
    i = url.rfind("/", 0, q if q >= 0 else len(url)) + 1
    if url[i : i + 1] not in _PLACEHOLDER_FIRST:
        return False
    return _PLACEHOLDER_NAME.fullmatch(url, i) is not None


def _looks_like_image_url(v: str) -> bool:
    if not v or len(v) > 2000 or " " in v or v.startswith(("data:", "javascript:", "{", "[")):
        return False
    path = v.split("?", 1)[0].split("#", 1)[0].lower()
    return path.endswith(_IMAGE_EXT) and not is_placeholder_image(v)
_SRCSET_ITEM = re.compile(r"\s*([^\s,][^\s]*?)(?:,|\s+([^,]*?)\s*(?:,|$)|$)")


_WS_CHARS = frozenset(" \t\n\r\f")
# RFC 3986 never allows these unencoded; in a lazy value they mean an unrendered template (`${src}`,
# `{{url}}`) or markup, not a URL (found by the issue 19 fuzz campaign).
_NOT_IN_URLS = frozenset('{}<>"`')


def parses_as_url(v: str) -> bool:
    """A lazy-loading attribute value that is one URL: not a JSON/list literal (`[https://cdn/x.jpg,
    (default)]`, `{"src": ...}`), no whitespace inside (a list, or srcset-like `x.jpg 2x`), and urlsplit
    reads it with either no scheme (relative) or an http(s) scheme and a host."""
    if v[0] in "[{(<\"'`" or not _WS_CHARS.isdisjoint(v) or not _NOT_IN_URLS.isdisjoint(v):
        return False
    try:
        parts = urlsplit(v)
    except ValueError:
        return False
    if not parts.scheme or parts.scheme.lower() == "data" or len(parts.scheme) == 1:  # relative, data: (placeholder), C:
        return True
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _is_placeholder(src: str) -> bool:
    return not src or src.startswith(("data:", "about:blank")) or src == "#" or is_placeholder_image(src)


def largest_srcset_candidate(srcset: str) -> str | None:
    """The candidate with the largest width (w) or density (x) descriptor; the first one if none."""
    best, best_score = None, -1.0
    for m in _SRCSET_ITEM.finditer(srcset):
        url = m.group(1).rstrip(",")
        if not url:
            continue
        desc = (m.group(2) or "").strip().lower()
        score = 1.0
        try:
            if desc.endswith("w"):
                score = float(desc[:-1]) * 1e-6 + 1e6  # any width beats density-only candidates
            elif desc.endswith("x"):
                score = float(desc[:-1])
        except ValueError:
            pass
        if score > best_score:
            best, best_score = url, score
    return best


class PlaceholderSrc(str):
    """What pick_src returns when every candidate URL of an <img> is a placeholder (dropped with that reason)."""


def pick_src(attrs: dict[str, str], use_lazy: bool, use_srcset: bool, lazy_names: tuple[str, ...]) -> str | None:
    """The raw URL an <img> stands for, or None.

    Order: a named lazy attribute (data-src, ...), `src`, the largest `srcset` candidate, then any other
    `data-*` attribute whose value is an image URL; each only when it is not empty, data: or a
    placeholder image. When all are, `src` itself (then dropped with its reason)."""
    if use_lazy and not attrs.keys().isdisjoint(lazy_names):  # one C-level test; most <img> have none
        for name in lazy_names:
            v = attrs.get(name)
            if v is not None:
                v = v.strip(_STRIP)
                if v and not _is_placeholder(v) and parses_as_url(v):
                    return v
    src = attrs.get("src")
    if src is not None:
        src = src.strip(_STRIP)
        if src and not _is_placeholder(src):
            return src
    if use_srcset:
        for name in ("srcset", "data-srcset") if use_lazy else ("srcset",):
            ss = attrs.get(name)
            if ss:
                cand = largest_srcset_candidate(ss)
                if cand and not _is_placeholder(cand):
                    return cand
    if use_lazy:
        for name, v in attrs.items():
            if name.startswith("data-") and name != "data-srcset":
                v = v.strip(_STRIP)
                if _looks_like_image_url(v):
                    return v
    if src and is_placeholder_image(src):
        return PlaceholderSrc(src)
    return src or None


class Resolver:
    """Resolves a page's image URLs: against <base href> (itself resolved against the page URL), then the page.

    The base is worked out once per page; root-relative and scheme-relative URLs without dot segments
    take a string fast path that equals urljoin (property-tested).
    """

    __slots__ = ("base", "origin", "scheme", "dir")

    def __init__(self, page_url: str, base_href: str | None):
        base = page_url = clean_url_string(page_url)
        if base_href:
            try:
                base = urljoin(page_url, clean_url_string(base_href))
            except ValueError:
                base = page_url
        self.base = base
        scheme, sep, rest = base.partition("://")
        if sep and scheme.lower() in ("http", "https") and "/" not in scheme:
            netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
            self.scheme, self.origin = scheme, f"{scheme}://{netloc}"
            path = rest[len(netloc) :].split("?", 1)[0].split("#", 1)[0]
            self.dir = self.origin + (path[: path.rfind("/") + 1] if path else "/")
            if "/." in self.dir or "\\" in self.dir or "@" in netloc or "//" in path or ";" in path:
                self.origin = None  # unusual base: leave it all to urljoin
        else:
            self.scheme = self.origin = None

    def __call__(self, src: str) -> str:
        if "\t" in src or "\n" in src or "\r" in src:
            src = _TABNL.sub("", src)  # WHATWG: tab and newline removed anywhere
        if not src:
            return urljoin(self.base, src)
        if src[0] <= " " or src[-1] <= " ":
            src = src.strip(_C0_SPACE)  # WHATWG: C0 controls and spaces stripped at both ends
            if not src:
                return urljoin(self.base, src)
        if src.startswith(("http://", "https://", "data:")):
            return src
        if src.startswith("./") and src[2:3].isascii() and src[2:3].isalnum() and ":" not in src[2:].split("/", 1)[0]:
            src = src[2:]  # "./x" is "x" (not "./a:b", where "a:" would read as a scheme; dot segments go to urljoin)
        if src.endswith(("?", "#")) or "?#" in src:
            return urljoin(self.base, src)  # urljoin drops empty queries / fragments
        if self.origin is not None and src[:1] == "/" and "/." not in src:
            if src[1:2] == "/":
                if src[2:3].isalnum() and ";" not in src:
                    return f"{self.scheme}:{src}"
                return urljoin(self.base, src)
            if "\\" not in src:
                return self.origin + src
        elif (self.origin is not None and src and src[0] not in "/?#.\\" and "/." not in src and "\\" not in src
              and "//" not in src and ";" not in src and ":" not in src.split("/", 1)[0].split("?", 1)[0]):
            return self.dir + src  # plain relative path (no scheme, no dot segments)
        return urljoin(self.base, src)


def resolve(page_url: str, base_href: str | None, src: str) -> str:
    """Absolute URL of `src` on a page (see Resolver)."""
    return Resolver(page_url, base_href)(src)


# No re.I (its case-folding charset tests cost ~25 % of the match): the scheme is spelt out, and the host
# class keeps exactly what [A-Za-z0-9] matched under re.I (also İ ı ſ and the Kelvin sign; a test
# recomputes this). The scheme does not take "ſ" (re.I let "httpſ://" through as a kept URL; the
# urlsplit path calls it invalid).
_HOST_CH = "A-Za-z0-9\u0130\u0131\u017f\u212a"
_FAST_URL = re.compile(
    r"([Hh][Tt][Tt][Pp][Ss]?)://([" + _HOST_CH + r"](?:[" + _HOST_CH + r".\-]*[" + _HOST_CH + r"])?)(?::([0-9]{1,5}))?"
    r"([/?][^\t\n\r\f\v#\"<>`\x00-\x1f\x7f\\@\[\]]*)?(#.*)?",
    re.S,
)


def check_url(url: str, max_host_chars: int, drop_svg: bool = True, drop_gif: bool = True) -> tuple[str | None, str | None]:
    """(normalised url, None) when the URL is kept, else (None, drop reason).

    Plain ASCII http(s) URLs take a regex fast path; everything else goes through urlsplit. A
    property test checks both give the same answer.
    """
    m = _FAST_URL.fullmatch(url)
    if m is None:
        return _check_url_slow(clean_url_string(url), max_host_chars, drop_svg, drop_gif)
    scheme, host, port, tail, frag = m.groups()
    if ".." in host or (port is not None and int(port) > 65535):
        return None, "invalid_url"
    if len(host) > max_host_chars:
        return None, "long_host"
    if tail:
        path = tail.split("?", 1)[0].lower()
        if drop_svg and path.endswith((".svg", ".svgz")):
            return None, "svg"
        if drop_gif and path.endswith(".gif"):
            return None, "gif"
    if not scheme.islower():
        url = scheme.lower() + url[len(scheme) :]
    if frag is not None:
        url = url[: m.start(5)]
    if " " in url:
        url = url.replace(" ", "%20")
    return url, None


def _check_url_slow(url: str, max_host_chars: int, drop_svg: bool = True, drop_gif: bool = True) -> tuple[str | None, str | None]:
    low = url[:11].lower()
    if low.startswith("data:"):
        return None, "data_uri"
    if low.startswith("javascript:"):
        return None, "javascript_uri"
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, "invalid_url"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None, "non_http" if scheme else "invalid_url"
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None, "invalid_url"
    if host and "[" in parts.netloc:
        # An IP literal (RFC 3986 "[" IPv6address "]"): any syntactically valid IPv6 address without a
        # zone id is kept; whether it may be fetched (private, loopback, ...) is the download stage's
        # SSRF guard's decision. IPvFuture and malformed literals are invalid.
        if not _is_ipv6_literal(parts.netloc, host):
            return None, "invalid_url"
    elif not host or not _HOST_OK.match(host) or host.startswith(".") or ".." in host:
        return None, "invalid_url"
    if len(host) > max_host_chars:
        return None, "long_host"
    path = parts.path.lower()
    if drop_svg and path.endswith((".svg", ".svgz")):
        return None, "svg"
    if drop_gif and path.endswith(".gif"):
        return None, "gif"
    if not url.startswith(scheme):
        if url[: len(scheme)].lower() != scheme:
            return None, "invalid_url"  # urlsplit read a scheme that is not the URL's prefix
        url = scheme + url[len(scheme) :]
    if _NEEDS_QUOTE.search(url):
        url = _NEEDS_QUOTE.sub(lambda m: "%%%02X" % ord(m.group(0)), url)
    if "#" in url:
        url = url.split("#", 1)[0]  # a fragment never changes the image fetched
    if _WELL_FORMED.fullmatch(url) is None or _CONTROL.search(url):
        return None, "invalid_url"  # never a row the blocking URL check would refuse
    return url, None


def _is_ipv6_literal(netloc: str, host: str) -> bool:
    hostport = netloc.rpartition("@")[2]
    if not hostport.startswith("[") or hostport.count("[") != 1 or hostport.count("]") != 1:
        return False
    if "%" in host or not all(c in "0123456789abcdefABCDEF:." for c in host):
        return False
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True
