"""WAT fast path: Common Crawl's metadata records already list each page's `IMG@/src` links with alt text.

No HTML is parsed; the JSON gives the page URL, HTTP headers, <head> metas/base/title and links. What a
WAT lacks: srcset and lazy-loading attributes (only IMG@/src is listed) and <html lang> — so those
rules only apply on the WARC path; everything else gives the same columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(slots=True)
class WatPage:
    page_url: str
    warc_date: str | None
    record_id: str | None
    http_headers: dict[str, str]
    content_type: str
    truncated: bool
    imgs: list[tuple[str | None, str | None]] = field(default_factory=list)  # (src, alt)
    base_href: str | None = None
    title: str | None = None
    metas: list[tuple[str, str]] = field(default_factory=list)
    license_hrefs: list[tuple[str, bool]] = field(default_factory=list)


def parse_wat_record(block: bytes) -> WatPage | None:
    """The page described by one WAT metadata record, or None for WAT records about non-responses.

    Raises ValueError (bad_wat_json) when the payload is not WAT JSON.
    """
    try:
        doc = json.loads(block)
        env = doc["Envelope"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not WAT JSON: {e}") from None
    wh = env.get("WARC-Header-Metadata") or {}
    if (wh.get("WARC-Type") or "").lower() != "response":
        return None
    pm = env.get("Payload-Metadata") or {}
    hrm = pm.get("HTTP-Response-Metadata")
    if not hrm:
        return None
    headers = {str(k).lower(): str(v) for k, v in (hrm.get("Headers") or {}).items()}
    uri = (wh.get("WARC-Target-URI") or "").strip()
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1]
    html = hrm.get("HTML-Metadata") or {}
    head = html.get("Head") or {}
    page = WatPage(
        page_url=uri,
        warc_date=wh.get("WARC-Date"),
        record_id=wh.get("WARC-Record-ID"),
        http_headers=headers,
        content_type=headers.get("content-type", ""),
        truncated="WARC-Truncated" in wh,
        base_href=(head.get("Base") or None) if isinstance(head.get("Base"), str) else None,
        title=head.get("Title"),
    )
    for meta in head.get("Metas") or []:
        name = meta.get("name") or meta.get("http-equiv") or meta.get("property")
        if name and "content" in meta:
            page.metas.append((str(name).strip().lower(), str(meta["content"])))
    for link in (head.get("Link") or []) + (html.get("Links") or []):
        path = link.get("path", "")
        url = link.get("url")
        if path == "IMG@/src":
            page.imgs.append((url, link.get("alt")))
        elif url and "creativecommons.org" in url.lower() and path in ("A@/href", "LINK@/href"):
            page.license_hrefs.append((url, "license" in str(link.get("rel", "")).lower().split()))
    return page
