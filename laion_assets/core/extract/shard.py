"""extract_shard: WARC (or WAT) files -> one shard's image-text pairs, errors and stats.

Row order is the order of the input files, then records, then <img> in the page; `key` numbers the
final rows. A bad record becomes an error row and the shard goes on; the shard fails only when the
bad-record ratio passes config.max_bad_record_ratio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from ..schemas.pairs import PAIR_ERROR_SCHEMA, PAIR_SCHEMA
from . import arrowcols, captions, language
from .config import COUNT_KEYS, ExtractConfig, TooManyBadRecords
from .htmlscan import PageOverBudget, decode_html, scan_html
from .maincontent import add_main_content
from .httpmsg import HttpError, decode_body, split_response
from .signals import optout_reasons, page_language, page_license
from .urls import PlaceholderSrc, Resolver, check_url, is_placeholder_image, pick_src
from .fastread import read_records
from .warc import BadRecord
from .wat import parse_wat_record, warc_location

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_PAGE_COLS = ("page_url", "warc_path", "warc_offset", "warc_record_id", "warc_date", "page_title", "page_language",
              "license", "optout_page", "optout_reasons")
_ROW_COLS = ("url", "text", "page_url", "warc_path", "warc_offset", "warc_record_id", "warc_date", "page_title",
             "page_language", "license", "optout_page", "optout_reasons", "in_main_content", "main_title", "site_name")


@dataclass(frozen=True)
class ExtractResult:
    table: pa.Table  # PAIR_SCHEMA
    errors: pa.Table  # PAIR_ERROR_SCHEMA
    stats: dict[str, int | float]


def _is_html(content_type: str | None, body: bytes) -> bool:
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime:
            return mime in _HTML_TYPES
    head = body[:512].lstrip().lower()  # no Content-Type: sniff like a browser would
    return head.startswith((b"<!doctype html", b"<html"))


_SURROGATE = re.compile("[\udc80-\udcff]")


def _cp1252_byte(m: re.Match) -> str:
    return bytes([ord(m.group(0)) - 0xDC00]).decode("cp1252")  # strict: 0x81 0x8D 0x8F 0x90 0x9D raise


def _is_http_response(warc_content_type: str, uri: str | None, block: bytes) -> bool:
    """An HTTP response block (application/http, or untyped and starting like one); not dns:/text/dns."""
    if warc_content_type:
        return warc_content_type.startswith("application/http")
    if uri is not None and uri.lstrip("<").lower().startswith(("dns:", "whois:", "ftp:", "filedesc:")):
        return False
    return True


class _Shard:
    """Accumulates rows (column lists), errors and counters for one shard."""

    def __init__(self, crawl: str, config: ExtractConfig):
        self.crawl, self.cfg = crawl, config
        self.stats: dict[str, int | float] = dict.fromkeys(COUNT_KEYS, 0)
        # page-level columns as (value, rows) runs: built into Arrow from each page's value once
        self.cols: dict[str, list] = {c: arrowcols.Runs() if c in _PAGE_COLS else [] for c in _ROW_COLS}
        self.errors: dict[str, list] = {f.name: [] for f in PAIR_ERROR_SCHEMA}
        self.seen: set[tuple[str, str]] = set()
        self.wat_paths: dict[tuple[str, str], str] = {}  # (WAT URI, Container.Filename) -> WARC URI

    def bad(self, warc_path: str, offset: int | None, uri: str | None, reason: str, detail: str) -> None:
        self.stats["bad_records"] += 1
        for k, v in (("crawl", self.crawl), ("warc_path", warc_path), ("warc_offset", offset),
                     ("target_uri", uri), ("reason", reason), ("detail", detail[:500])):
            self.errors[k].append(v)

    def page(self, *, page_url: str, warc_path: str, offset: int, record_id: str | None, date: str | None,
             imgs: list[tuple[str | None, str | None]], base_href: str | None, title: str | None,
             html_lang: str | None, metas: list[tuple[str, str]], http_headers: dict[str, str],
             license_hrefs: list[tuple[str, bool]], check_placeholders: bool = False, html: str | None = None) -> None:
        """Apply the caption and URL rules to one page's images and append the kept rows.

        `check_placeholders`: test each URL for a placeholder name (the WAT path; on the WARC path
        pick_src already did, and marks a placeholder-only <img> as PlaceholderSrc).
        `html`: the decoded page, given when main-content signals are on (trafilatura runs on it only
        when the page kept a row)."""
        cfg, st = self.cfg, self.stats
        st["imgs_seen"] += len(imgs)
        reasons = optout_reasons(metas, http_headers)
        lic = page_license(license_hrefs) if license_hrefs else None
        if lic:
            st["pages_with_license"] += 1
        if reasons:
            st["pages_opted_out"] += 1
        # hot loop (once per <img>): config values, counters and appends held in locals
        cols, seen = self.cols, self.seen
        url_append, text_append = cols["url"].append, cols["text"].append
        max_chars, min_chars, max_host = cfg.max_caption_chars, cfg.min_caption_chars, cfg.max_host_chars
        max_url, max_rows = cfg.max_url_chars, cfg.max_page_rows
        drop_svg, drop_gif = cfg.drop_svg, cfg.drop_gif
        clean_caption = captions.clean_caption
        kept = no_alt = short = before_dedup = truncated = dups = 0
        resolver = None
        try:
            for n_img, (src, alt) in enumerate(imgs):
                if kept >= max_rows:
                    st["dropped_page_row_cap"] += len(imgs) - n_img  # bounded work per page, whatever it holds
                    break
                if alt is None or not alt.strip():
                    no_alt += 1
                    continue
                text, cut = clean_caption(alt, max_chars)
                if len(text) < min_chars:
                    short += 1
                    continue
                if "\ufffd" in text:
                    st["dropped_replacement_char"] += 1
                    continue
                if not src:
                    st["dropped_no_src"] += 1
                    continue
                try:
                    if resolver is None:
                        resolver = Resolver(page_url, base_href)
                    url = resolver(src)
                except ValueError:
                    st["dropped_invalid_url"] += 1
                    continue
                url, why = check_url(url, max_host, drop_svg, drop_gif)
                if why is not None:
                    st["dropped_" + why] += 1
                    continue
                if len(url) > max_url:
                    st["dropped_long_url"] += 1
                    continue
                if src.__class__ is PlaceholderSrc or (check_placeholders and is_placeholder_image(url)):
                    st["dropped_placeholder"] += 1
                    continue
                before_dedup += 1
                if cut:
                    truncated += 1
                k = (url, text)
                if k in seen:
                    dups += 1
                    continue
                seen.add(k)
                url_append(url)
                text_append(text)
                kept += 1
        finally:
            st["dropped_no_alt"] += no_alt
            st["dropped_short_caption"] += short
            st["pairs_before_dedup"] += before_dedup
            st["captions_truncated"] += truncated
            st["duplicates_removed"] += dups
        if kept:
            title = " ".join(title.split())[:1000] or None if title else None
            plang = page_language(html_lang, metas, http_headers)
            optout = ",".join(reasons) or None
            for name, value in (("page_url", page_url), ("warc_path", warc_path), ("warc_offset", offset), ("warc_record_id", record_id),
                                ("warc_date", date), ("page_title", title), ("page_language", plang),
                                ("license", lic), ("optout_page", bool(reasons)), ("optout_reasons", optout)):
                cols[name].append((value, kept))
            add_main_content(cols, st, self.cfg, html, page_url, base_href, kept)

    def warc_record(self, rec, warc_path: str) -> None:
        st = self.stats
        rtype = rec.type
        key = f"{rtype}_records"
        st[key if key in st else "other_records"] += 1
        if rtype not in ("response", "resource"):
            return
        uri = rec.target_uri
        truncated = "warc-truncated" in rec.headers or rec.cut
        if truncated:
            st["truncated_records"] += 1
        block = rec.block
        cap = self.cfg.max_html_bytes
        if rec.version.startswith("ARC") and rtype == "response" and not block.startswith(b"HTTP/"):
            rtype = "resource"  # an ARC record of an http URL stored without its HTTP headers
            rec.headers["content-type"] = rec.headers.get("arc-content-type", "")
        wtype = rec.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if rtype == "response" and _is_http_response(wtype, uri, block):
            try:
                _, headers, body = split_response(block)
            except HttpError as e:
                self.bad(warc_path, rec.offset, uri, e.reason, str(e))
                return
            # "Is this HTML?" from the Content-Type before any decoding: CSS/JS/PDF are never bad records.
            ctype = headers.get("content-type")
            if ctype is not None and ctype.strip() and not _is_html(ctype, b""):
                st["non_html_records"] += 1
                return
            try:
                body, warns = decode_body(body, headers, truncated, cap)
            except HttpError as e:
                if ctype is None or not ctype.strip():  # unknown type that does not decode: not a page
                    st["non_html_records"] += 1
                    return
                self.bad(warc_path, rec.offset, uri, e.reason, str(e))
                return
            if warns:
                st["http_framing_warnings"] += len(warns)
            if not _is_html(ctype, body):
                st["non_html_records"] += 1
                return
        else:
            # A resource, or a non-HTTP response (dns:, whois:, ftp:; Heritrix writes text/dns): the block
            # is the payload and the WARC Content-Type its type.
            if rtype == "response":
                st["non_http_responses"] += 1
            headers, body = {}, block
            ctype = rec.headers.get("content-type")
            if not _is_html(ctype, body) or (rtype == "response" and wtype not in _HTML_TYPES):
                st["non_html_records"] += 1
                return
        if not uri or "warc-date" not in rec.headers:
            self.bad(warc_path, rec.offset, uri, "bad_warc_header", "HTML record without WARC-Target-URI or WARC-Date")
            return
        if rec.cut:
            st["records_cut_at_eof"] += 1
        st["html_pages"] += 1
        st["html_bytes"] += len(body)
        if len(body) > cap:
            body = body[:cap]
        cfg = self.cfg
        deadline = time.perf_counter() + cfg.max_page_scan_s
        text, codec = decode_html(body, ctype)
        try:
            scan = scan_html(text, body, codec, max_tags=cfg.max_page_tags, deadline=deadline)
        except PageOverBudget as e:
            st["pages_over_budget"] += 1
            self.bad(warc_path, rec.offset, uri, "page_over_budget", f"{len(body)} bytes of HTML: {e}")
            return
        lazy, srcset, names = cfg.use_lazy_attributes, cfg.use_srcset, cfg.lazy_attributes
        imgs = [(pick_src(a, lazy, srcset, names), a.get("alt")) if a is not None else (None, None) for a in scan.imgs]
        if codec in ("utf-8", "utf-8-sig") and any(alt is not None and "\ufffd" in alt for _, alt in imgs):
            try:
                imgs = self._redecode_cp1252(body, imgs, cfg.max_page_tags, deadline)
            except PageOverBudget:
                pass  # keep the U+FFFD captions: they are dropped with their reason
        self.page(page_url=uri, warc_path=warc_path, offset=rec.offset, record_id=rec.headers.get("warc-record-id"),
                  date=rec.headers.get("warc-date"), imgs=imgs, base_href=scan.base_href, title=scan.title,
                  html_lang=scan.html_lang, metas=scan.metas, http_headers=headers,
                  license_hrefs=scan.license_hrefs, html=text if cfg.main_content_signals else None)

    def _redecode_cp1252(self, body: bytes, imgs: list, max_tags: int, deadline: float) -> list:
        """Captions with U+FFFD on a UTF-8 page: their invalid bytes read as cp1252 (mixed-encoding pages),
        when every such byte is defined in cp1252; otherwise left as they are (then dropped)."""
        raw = scan_html(body.decode("utf-8", "surrogateescape"), max_tags=max_tags, deadline=deadline)
        if len(raw.imgs) != len(imgs):
            return imgs
        out = []
        for (src, alt), a in zip(imgs, raw.imgs):
            if alt is not None and "\ufffd" in alt and a is not None:
                try:
                    fixed = _SURROGATE.sub(_cp1252_byte, a.get("alt", ""))
                except UnicodeDecodeError:
                    fixed = alt
                if "\ufffd" not in fixed:
                    self.stats["captions_redecoded_cp1252"] += 1
                alt = fixed
            out.append((src, alt))
        return out

    def wat_record(self, rec, warc_path: str) -> None:
        st = self.stats
        rtype = rec.type
        key = f"{rtype}_records"
        st[key if key in st else "other_records"] += 1
        if rtype != "metadata" or "json" not in rec.headers.get("content-type", "json"):
            return
        try:
            page = parse_wat_record(rec.block)
        except ValueError as e:
            self.bad(warc_path, rec.offset, rec.target_uri, "bad_wat_json", str(e))
            return
        if page is None:
            return
        if page.truncated:
            st["truncated_records"] += 1
        if not _is_html(page.content_type, b"<html"):
            st["non_html_records"] += 1
            return
        if not page.page_url or not page.warc_date:
            self.bad(warc_path, rec.offset, page.page_url, "bad_wat_json", "WAT page without WARC-Target-URI or WARC-Date")
            return
        st["html_pages"] += 1
        # Provenance is the WARC response the WAT record describes (Container); a WAT record without a
        # usable Container (not Common Crawl's writer) keeps the WAT record's own location.
        if page.warc_filename is not None:
            key = (warc_path, page.warc_filename)
            src_path = self.wat_paths.get(key)
            if src_path is None:
                src_path = self.wat_paths[key] = warc_location(warc_path, page.warc_filename)
            src_offset = page.warc_offset
        else:
            src_path, src_offset = warc_path, rec.offset
        self.page(page_url=page.page_url, warc_path=src_path, offset=src_offset, record_id=page.record_id, date=page.warc_date,
                  imgs=page.imgs, base_href=page.base_href, title=page.title, html_lang=None, metas=page.metas,
                  http_headers=page.http_headers, license_hrefs=page.license_hrefs, check_placeholders=True)

    def table(self) -> pa.Table:
        cols, cfg, n = self.cols, self.cfg, len(self.cols["url"])
        langs, scores, reliable = [], [], []
        if cfg.detect_caption_language:
            # only kept, unique pairs; each distinct caption once, all of the shard's in one batch
            texts = cols["text"]
            unique = list(dict.fromkeys(texts))
            if len(unique) == n:  # the usual case: no caption repeats, no lookup table needed
                results = language.detect_many(texts)
            else:
                found = dict(zip(unique, language.detect_many(unique)))
                results = [found[t] for t in texts]
            langs = [lang for lang, _ in results]
            scores = probs = [prob for _, prob in results]  # float32 values as Python floats
            # language.is_reliable per row (plain Python: pyarrow.compute costs ~50 ms to import)
            min_p, min_chars = float(cfg.caption_language_min_probability), cfg.caption_language_min_chars
            reliable = [p >= min_p and len(t) >= min_chars for p, t in zip(probs, texts)]
            self.stats["captions_language_reliable"] = sum(reliable)
        else:
            langs, scores, reliable = [None] * n, [None] * n, [None] * n
        data = {
            "key": arrowcols.keys(n),
            **{c: cols[c] for c in ("url", "text", "page_url")},
            "crawl": arrowcols.Runs([(self.crawl, n)]) if n else [],
            **{c: cols[c] for c in ("warc_path", "warc_offset", "warc_record_id", "warc_date", "page_title", "page_language")},
            "caption_language": langs,
            "caption_language_score": scores,
            "caption_language_reliable": reliable,
            **{c: cols[c] for c in ("license", "optout_page", "optout_reasons", "in_main_content", "main_title", "site_name")},
        }
        return arrowcols.table(data, PAIR_SCHEMA)  # not pa.table: that imports pandas (arrowcols.py)


def _default_open(uri: str) -> BinaryIO:
    return open(uri, "rb")


def extract_shard(
    warc_uris: Sequence[str],
    *,
    crawl: str,
    config: ExtractConfig = ExtractConfig(),
    open_fn: Callable[[str], BinaryIO] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Extract one shard (a list of WARC or WAT files, read in order).

    Raises TooManyBadRecords (its `.result` holds the partial result) past the bad-record ratio.
    Errors opening a file propagate: that is an infrastructure failure to retry, not bad data.
    """
    if isinstance(warc_uris, str):
        raise TypeError("warc_uris must be a sequence of URIs, not one string")
    open_fn = open_fn or _default_open
    shard = _Shard(crawl, config)
    st = shard.stats
    handle = shard.wat_record if config.input_format == "wat" else shard.warc_record
    every = max(1, config.progress_every_pages)
    next_report = every
    for uri in warc_uris:
        st["warc_files"] += 1
        with open_fn(uri) as f:
            for rec in read_records(f, config.max_record_bytes):
                st["records_read"] += 1
                if isinstance(rec, BadRecord):
                    shard.bad(uri, rec.offset, rec.target_uri, rec.reason, rec.detail)
                    continue
                if rec.framing_warning is not None:
                    st["warc_framing_warnings"] += 1
                try:
                    handle(rec, uri)
                except Exception as e:  # noqa: BLE001 - one page must not end the shard; it is counted
                    shard.bad(uri, rec.offset, rec.target_uri, "parse_error", f"{type(e).__name__}: {e}")
                if progress is not None and st["html_pages"] >= next_report:
                    progress(st["html_pages"])
                    next_report = st["html_pages"] + every
    if progress is not None:
        progress(st["html_pages"])
    st["pairs_kept"] = len(shard.cols["url"])
    st["bad_record_ratio"] = st["bad_records"] / st["records_read"] if st["records_read"] else 0.0
    result = ExtractResult(
        table=shard.table(),
        errors=arrowcols.table(shard.errors, PAIR_ERROR_SCHEMA),
        stats=dict(st),
    )
    if st["bad_record_ratio"] > config.max_bad_record_ratio:
        raise TooManyBadRecords(
            f"{st['bad_records']} bad of {st['records_read']} records "
            f"(ratio {st['bad_record_ratio']:.4f} > max {config.max_bad_record_ratio}) in {len(warc_uris)} file(s)",
            result,
        )
    return result


def stats_table(stats: dict) -> pa.Table:
    """One-row table of the stats (ints as int64, ratios as float64), columns in a stable order."""
    fields, values = [], []
    for k in sorted(stats):
        v = stats[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"stats[{k!r}] is {type(v).__name__}, expected int or float")
        fields.append(pa.field(k, pa.float64() if isinstance(v, float) else pa.int64(), nullable=False))
        values.append([v])
    return pa.table(values, schema=pa.schema(fields))
