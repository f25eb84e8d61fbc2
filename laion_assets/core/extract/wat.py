"""WAT fast path: Common Crawl's metadata records already list each page's `IMG@/src` links with alt text.

No HTML is parsed; the JSON gives the page URL, HTTP headers, <head> metas/base/title and links. What a
WAT lacks: srcset and lazy-loading attributes (only IMG@/src is listed) and <html lang> — so those
rules only apply on the WARC path; everything else gives the same columns.

Provenance: rows point at the WARC response record the WAT record describes, not at the WAT record.
`Container.Filename` / `Container.Offset` give the WARC file and the offset of the record (its gzip
member when `Container.Compressed`); `Envelope.WARC-Header-Metadata` gives the response's
WARC-Record-ID and WARC-Date. `warc_location` turns the file name into a URI (rule in its docstring).
"""

from __future__ import annotations

import json
import posixpath
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
    warc_filename: str | None = None  # Container.Filename: the WARC holding the response
    warc_offset: int | None = None  # Container.Offset: that record's offset (gzip member) in it


def warc_location(wat_uri: str, filename: str) -> str:
    """URI of the WARC named by a WAT record's `Container.Filename`, given the WAT's own URI.

    * A filename with a scheme (`s3://...`, `https://...`) or an absolute path is used as it is.
    * A filename starting `crawl-data/` is relative to the bucket root: the part of the WAT URI before
      its own `crawl-data/` (if the WAT URI has none, it is joined to the WAT's directory).
    * A bare file name (what Common Crawl writes) lives next to the WAT in Common Crawl's layout:
      `crawl-data/<crawl>/segments/<seg>/wat/<name>.warc.wat.gz` <-> `.../segments/<seg>/warc/<name>.warc.gz`,
      so when the WAT's directory is named `wat` (or `wet`), its sibling `warc` directory is used;
      otherwise the WARC is taken to sit in the WAT's own directory.
    """
    if "://" in filename or filename.startswith("/"):
        return filename
    scheme, sep, path = wat_uri.rpartition("://")
    prefix = scheme + sep
    if filename.startswith("crawl-data/"):
        i = path.find("crawl-data/")
        if i >= 0:
            return prefix + path[:i] + filename
    directory = posixpath.dirname(path)
    if "/" not in filename and posixpath.basename(directory) in ("wat", "wet"):
        directory = posixpath.join(posixpath.dirname(directory), "warc")
    return prefix + (posixpath.join(directory, filename) if directory else filename)


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
    container = doc.get("Container") or {}
    filename = container.get("Filename") if isinstance(container, dict) else None
    try:
        offset = int(container["Offset"]) if filename else None  # a string in Common Crawl WATs
    except (KeyError, TypeError, ValueError):
        offset = None
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
        warc_filename=str(filename) if filename and offset is not None and offset >= 0 else None,
        warc_offset=offset if filename and offset is not None and offset >= 0 else None,
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
