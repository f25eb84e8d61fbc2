"""Extraction settings, the bad-record vocabulary and the stats keys (one place, documented in docs/extraction.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from laion_assets.core.lib.validation import require_choice, require_int_range, require_range

# Why a WARC/WAT record could not be used. Fixed vocabulary: the errors table's `reason` column.
BAD_RECORD_REASONS: dict[str, str] = {
    "gzip_error": "corrupt deflate data in a gzip member; reading resumes at the next gzip member",
    "truncated_gzip": "the file ends inside a gzip member (record cut short)",
    "bad_warc_header": "the record does not start with a 'WARC/x.y' line or its header block is unreadable",
    "bad_content_length": "Content-Length missing, negative or not a number",
    "record_too_large": "declared Content-Length above config.max_record_bytes",
    "length_mismatch": "declared Content-Length disagrees with where the record really ends",
    "truncated_record": "the file (or its last gzip member) ends before the declared Content-Length",
    "bad_http": "an HTTP response record whose status line / headers cannot be parsed",
    "bad_transfer_encoding": "chunked transfer encoding that cannot be decoded",
    "bad_content_encoding": "gzip/deflate Content-Encoding that cannot be decoded, or an unsupported one",
    "bad_wat_json": "a WAT metadata record whose payload is not the expected JSON",
    "page_over_budget": "a page needing more tags or time than max_page_tags / max_page_scan_s allow (skipped)",
    "parse_error": "unexpected failure while extracting a page (detail has the exception)",
}

# Why an <img> (or WAT IMG@/src link) did not become a row. Each is a stats key `dropped_<reason>`.
DROP_REASONS: tuple[str, ...] = (
    "no_src",  # no usable src (nor lazy / srcset candidate)
    "no_alt",  # alt missing or empty after stripping
    "short_caption",  # cleaned caption shorter than min_caption_chars
    "data_uri",  # data: URL
    "javascript_uri",  # javascript: URL
    "non_http",  # any other non-http(s) scheme (ftp:, mailto:, about:, blob:, ...)
    "invalid_url",  # unparseable URL, empty or malformed host, bad port
    "long_host",  # host longer than max_host_chars
    "svg",  # path ends in .svg / .svgz
    "gif",  # path ends in .gif
    "placeholder",  # a lazy-loading placeholder image (blank.gif, lazy-l.png, pixel.png, spacer...) and no real URL
    "replacement_char",  # caption holds U+FFFD (bytes invalid in the page's charset, not valid cp1252 either)
    "long_url",  # the image URL (as written, or resolved) is longer than max_url_chars
    "page_row_cap",  # the page already gave max_page_rows rows: its later <img> are not read
)

# Counters that always exist in stats (so the stats parquet has a fixed schema).
COUNT_KEYS: tuple[str, ...] = (
    "warc_files",
    "records_read",
    "response_records",
    "resource_records",
    "request_records",
    "metadata_records",
    "warcinfo_records",
    "revisit_records",
    "other_records",
    "truncated_records",
    "records_cut_at_eof",
    "warc_framing_warnings",
    "http_framing_warnings",
    "non_http_responses",
    "pages_over_budget",
    "non_html_records",
    "html_pages",
    "html_bytes",
    "pages_with_license",
    "pages_opted_out",
    "bad_records",
    "imgs_seen",
    "captions_truncated",
    "pairs_before_dedup",
    "duplicates_removed",
    "pairs_kept",
    "captions_language_reliable",
    "captions_redecoded_cp1252",
    "pages_main_content_checked",  # pages trafilatura ran on (main_content_signals)
    "main_content_errors",  # of those, pages where it raised or that were over main_content_max_html_chars
) + tuple(f"dropped_{r}" for r in DROP_REASONS)
RATIO_KEYS: tuple[str, ...] = ("bad_record_ratio",)


class TooManyBadRecords(RuntimeError):
    """The shard's bad-record ratio is above config.max_bad_record_ratio; the shard is not published.

    Carries the partial result (`result`) so the caller can still record errors and stats.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ExtractConfig:
    """How a shard is extracted. Units are in the names; defaults follow LAION-5B where LAION had a rule."""

    input_format: Literal["warc", "wat"] = "warc"
    # Fail the shard when bad_records / records_read is above this (0.05 = 5 %).
    max_bad_record_ratio: float = 0.05
    # Captions (characters after cleaning): drop shorter, cut longer (LAION: 5 and 2000).
    min_caption_chars: int = 5
    max_caption_chars: int = 2000
    # Image URL host longer than this is dropped (characters).
    max_host_chars: int = 60
    # Image URL longer than this (as written in the page, or once resolved) is dropped (characters).
    # 2048 is what sitemaps and most CDNs accept; a longer one is junk or an attack on the downloader.
    max_url_chars: int = 2048
    # Rows one page may give; its later <img> are counted in dropped_page_row_cap and not read. Real
    # pages rarely pass a few hundred; a 5 MB tag soup gave 140,891 rows for one host.
    max_page_rows: int = 2000
    # Take the largest `srcset` candidate when `src` is missing or a data: placeholder.
    use_srcset: bool = True
    # Prefer lazy-loading attributes (data-src, data-original, ...) over `src` when present.
    use_lazy_attributes: bool = True
    lazy_attributes: tuple[str, ...] = ("data-src", "data-original", "data-lazy-src", "data-lazy", "data-url")
    drop_svg: bool = True
    drop_gif: bool = True
    # Caption language with py3langid (model ships with the package), only on kept unique captions.
    detect_caption_language: bool = True
    # A detection is "reliable" when its normalised probability and caption length reach these.
    caption_language_min_probability: float = 0.5
    caption_language_min_chars: int = 10
    # Records larger than this are counted bad instead of buffered (bytes).
    max_record_bytes: int = 64 * 1024 * 1024
    # HTML beyond this many bytes of a page is not scanned (bytes; Common Crawl truncates at 1 MiB).
    max_html_bytes: int = 5 * 1024 * 1024
    # Per-page budget: a page with more tags than this, or scanned for longer (seconds of wall time),
    # is skipped as a `page_over_budget` bad record. A 5 MiB page of real HTML has ~100k tags and
    # scans in well under a second.
    max_page_tags: int = 500_000
    max_page_scan_s: float = 10.0
    # Call `progress` every this many pages.
    progress_every_pages: int = 1000
    # trafilatura on the pages that yield pairs (maincontent.py): rows get in_main_content, main_title and
    # site_name. Off by default (~20 ms a page). Pages longer than main_content_max_html_chars (decoded
    # characters) keep nulls: its cost grows with the page (~5 s CPU for 1.9 M characters of 30k images).
    main_content_signals: bool = False
    main_content_max_html_chars: int = 1_000_000

    def __post_init__(self) -> None:
        require_choice("input_format", self.input_format, ("warc", "wat"))
        require_range("max_bad_record_ratio", self.max_bad_record_ratio, 0.0, 1.0)
        require_int_range("min_caption_chars", self.min_caption_chars, 1)
        require_int_range("max_caption_chars", self.max_caption_chars, self.min_caption_chars)
        require_int_range("max_host_chars", self.max_host_chars, 1)
        require_int_range("max_url_chars", self.max_url_chars, 16)
        require_int_range("max_page_rows", self.max_page_rows, 1)
        require_int_range("max_record_bytes", self.max_record_bytes, 1)
        require_int_range("max_html_bytes", self.max_html_bytes, 1)
        require_int_range("max_page_tags", self.max_page_tags, 1)
        require_range("max_page_scan_s", self.max_page_scan_s, 0.0, lo_open=True)
        require_int_range("progress_every_pages", self.progress_every_pages, 1)
        require_int_range("main_content_max_html_chars", self.main_content_max_html_chars, 1)
