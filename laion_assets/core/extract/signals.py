"""Page-level signals recorded on every row: opt-outs (for the download stage to honour), licence, language.

Opt-out sources (reason tokens in `optout_reasons`, comma-joined, sorted):
  meta_robots:noai / meta_robots:noimageai   <meta name="robots" content="... noai ...">
  meta_tdm_reservation                       <meta name="tdm-reservation" content="1">
  x_robots_tag:noai / x_robots_tag:noimageai X-Robots-Tag response header
  header_tdm_reservation                     tdm-reservation: 1 response header
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .language import normalize_page_language

_TOKENS = re.compile(r"[\s,;:]+")
_AI_TOKENS = ("noai", "noimageai")
_CC_PATH = re.compile(r"^/(licenses|licences|publicdomain)/([a-z0-9.\-]+(?:/[a-z0-9.\-]+)*)", re.I)


def _ai_tokens(value: str) -> list[str]:
    toks = {t.lower() for t in _TOKENS.split(value)}
    return [t for t in _AI_TOKENS if t in toks]


def _tdm_reserved(value: str | None) -> bool:
    return value is not None and value.strip() == "1"


def optout_reasons(metas: list[tuple[str, str]], http_headers: dict[str, str]) -> list[str]:
    reasons: set[str] = set()
    for name, content in metas:
        if name == "robots":
            reasons.update(f"meta_robots:{t}" for t in _ai_tokens(content))
        elif name == "tdm-reservation" and _tdm_reserved(content):
            reasons.add("meta_tdm_reservation")
    xrt = http_headers.get("x-robots-tag")
    if xrt:
        reasons.update(f"x_robots_tag:{t}" for t in _ai_tokens(xrt))
    if _tdm_reserved(http_headers.get("tdm-reservation")):
        reasons.add("header_tdm_reservation")
    return sorted(reasons)


def normalize_license(href: str) -> str | None:
    """Canonical https://creativecommons.org/<licenses|publicdomain>/<...>/ URL, or None if not a licence."""
    href = href.strip()
    if href.startswith("//"):
        href = "https:" + href
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host not in ("creativecommons.org", "www.creativecommons.org"):
        return None
    m = _CC_PATH.match(parts.path)
    if not m:
        return None
    kind = "licenses" if m.group(1).lower() != "publicdomain" else "publicdomain"
    rest = m.group(2).lower().strip("/")
    # Drop a trailing legalcode / deed.xx page, keep type and version (and jurisdiction).
    segs = [s for s in rest.split("/") if s and not s.startswith(("legalcode", "deed"))]
    if not segs:
        return None
    return f"https://creativecommons.org/{kind}/{'/'.join(segs)}/"


def page_license(hrefs: list[tuple[str, bool]]) -> str | None:
    """A rel="license" link wins; otherwise the first creativecommons.org licence link on the page."""
    for want_rel in (True, False):
        for href, rel in hrefs:
            if rel == want_rel or not want_rel:
                lic = normalize_license(href)
                if lic:
                    return lic
    return None


def page_language(html_lang: str | None, metas: list[tuple[str, str]], http_headers: dict[str, str]) -> str | None:
    """<html lang>, else <meta http-equiv=content-language>, else the Content-Language header."""
    lang = normalize_page_language(html_lang)
    if lang:
        return lang
    for name, content in metas:
        if name in ("content-language", "language", "dc.language"):
            lang = normalize_page_language(content)
            if lang:
                return lang
    return normalize_page_language(http_headers.get("content-language"))
