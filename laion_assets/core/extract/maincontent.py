"""trafilatura's job (issue 22), behind `ExtractConfig.main_content_signals` (default off): on a page that
yields pairs, which of its images sit in the page's main content, and the page's title and site name.

Why trafilatura and only here: its main-content detection (boilerplate removal) is what it is best at
and no tag scan can do; it costs ~10-30 ms a page (lxml tree, heuristics, metadata), so it runs only on
pages with at least one kept row, never on the hot path of the tag scan. A boilerplate logo, an ad or
a "share" icon is outside the main content; a figure of an article is inside. `in_main_content` is a
quality signal (recorded, not filtered).

Matching: trafilatura keeps `<graphic src=...>` for the images of the main content (it resolves
relative `src` against the page URL and reads lazy `data-src`); each such URL goes through the same
Resolver and `check_url` as a row's URL, so a row is in the main content when its normalised URL is
one of them. trafilatura is imported on first use (start-up of the default path is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

from .urls import Resolver, check_url


@dataclass(frozen=True, slots=True)
class MainContent:
    image_urls: frozenset[str]  # normalised URLs of the images trafilatura keeps in the main content
    title: str | None  # trafilatura's title (og:title, h1 or a cleaned <title>)
    site_name: str | None  # og:site_name, publisher or host name as trafilatura reads it


class MainContentError(Exception):
    """trafilatura failed on the page (the page's rows keep null main-content columns)."""


def _clean(value: str | None, max_chars: int = 1000) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())[:max_chars]
    return value or None


def main_content(html: str, page_url: str, base_href: str | None, max_host_chars: int) -> MainContent | None:
    """Run trafilatura once on a page's decoded HTML; None when it finds no content at all (not judged:
    the rows keep nulls); MainContentError if it raises."""
    try:
        from trafilatura import bare_extraction

        # fast=True: no fallback extractors (readability/justext), ~2-3x cheaper, same main-content idea.
        doc = bare_extraction(html, url=page_url, fast=True, include_images=True, include_comments=False,
                              with_metadata=True)
    except Exception as e:  # noqa: BLE001 - third-party parser on hostile input: one page, counted
        raise MainContentError(f"{type(e).__name__}: {e}") from e
    if doc is None:  # nothing trafilatura calls content: not judged (null), rather than "not in it"
        return None
    resolver = Resolver(page_url, base_href)
    urls = set()
    body = doc.body
    if body is not None:
        for g in body.iter("graphic"):
            src = (g.get("src") or "").strip()
            if not src:
                continue
            try:
                url, why = check_url(resolver(src), max_host_chars, False, False)
            except ValueError:
                continue
            if why is None:
                urls.add(url)
    return MainContent(frozenset(urls), _clean(doc.title), _clean(doc.sitename))


def add_main_content(cols: dict[str, list], stats: dict, cfg, html: str | None, page_url: str,
                     base_href: str | None, kept: int) -> None:
    """Append in_main_content / main_title / site_name for a page's last `kept` rows of `cols` (nulls
    unless `html` is given and trafilatura judged the page); counts pages checked and failures."""
    signals = None  # also None when trafilatura finds no content on the page: nulls, not False
    if html is not None:
        stats["pages_main_content_checked"] += 1
        if len(html) > cfg.main_content_max_html_chars:
            stats["main_content_errors"] += 1
        else:
            try:
                signals = main_content(html, page_url, base_href, cfg.max_host_chars)
            except MainContentError:
                stats["main_content_errors"] += 1
    if signals is None:
        for name in ("in_main_content", "main_title", "site_name"):
            cols[name].extend([None] * kept)
        return
    urls = signals.image_urls
    cols["in_main_content"].extend([u in urls for u in cols["url"][-kept:]])
    cols["main_title"].extend([signals.title] * kept)
    cols["site_name"].extend([signals.site_name] * kept)
