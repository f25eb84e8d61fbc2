"""DuckDB checks on one shard's extraction, over views `pairs`, `pair_errors` and `pair_stats`.

Each SQL selects the offending rows (zero rows = pass). Thresholds are params with defaults equal to
ExtractConfig's, so the lead can pass the run's config values.
"""

from __future__ import annotations

from laion_assets.core.checks import SqlCheck
from .config import ExtractConfig

_D = ExtractConfig()

CHECKS: list[SqlCheck] = [
    SqlCheck(
        name="pairs_url_well_formed",
        description="Every image URL is absolute http(s), with a host, no whitespace or control characters.",
        sql=r"""SELECT key, url FROM pairs
                WHERE url IS NULL
                   OR NOT regexp_matches(url, '^https?://[^\s/?#]+([/?#][^\s]*)?$')
                   OR regexp_matches(url, '[\x00-\x20\x7f]')""",
        blocking=True,
    ),
    SqlCheck(
        name="pairs_host_length",
        description="Image URL hosts are at most {max_host_chars} characters (LAION rule).",
        sql=r"""SELECT key, url FROM pairs
                WHERE length(regexp_extract(url, '^https?://(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)', 1)) > {max_host_chars}""",
        params={"max_host_chars": _D.max_host_chars},
    ),
    SqlCheck(
        name="pairs_caption_length",
        description="Captions are {min_caption_chars}..{max_caption_chars} characters, trimmed, without control characters.",
        sql=r"""SELECT key, text FROM pairs
                WHERE text IS NULL
                   OR length(text) < {min_caption_chars} OR length(text) > {max_caption_chars}
                   OR text <> trim(text)
                   OR regexp_matches(text, '[\x00-\x1f\x7f]')""",
        blocking=True,
        params={"min_caption_chars": _D.min_caption_chars, "max_caption_chars": _D.max_caption_chars},
    ),
    SqlCheck(
        name="pairs_unique_url_text",
        description="No duplicate (url, text) within the shard.",
        sql="SELECT url, text, count(*) AS n FROM pairs GROUP BY url, text HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="pairs_key_unique",
        description="`key` is unique in the shard (it names the WebDataset members).",
        sql="SELECT key, count(*) AS n FROM pairs GROUP BY key HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="pairs_provenance_not_null",
        description="Provenance on every row: crawl, warc_path, warc_offset, page_url, warc_date.",
        sql="""SELECT key, crawl, warc_path, warc_offset, page_url, warc_date FROM pairs
               WHERE crawl IS NULL OR crawl = '' OR warc_path IS NULL OR warc_path = ''
                  OR warc_offset IS NULL OR warc_offset < 0 OR page_url IS NULL OR page_url = ''
                  OR warc_date IS NULL OR warc_date = ''""",
        blocking=True,
    ),
    SqlCheck(
        name="bad_record_ratio_under_threshold",
        description="bad_records / records_read is at most {max_bad_record_ratio}.",
        sql="""SELECT records_read, bad_records, bad_record_ratio FROM pair_stats
               WHERE bad_record_ratio > {max_bad_record_ratio}
                  OR (records_read > 0 AND abs(bad_records / records_read - bad_record_ratio) > 1e-9)""",
        blocking=True,
        params={"max_bad_record_ratio": _D.max_bad_record_ratio},
    ),
    SqlCheck(
        name="errors_match_stats",
        description="Every bad record counted in the stats has its row in pair_errors, and vice versa.",
        sql="""SELECT s.bad_records, (SELECT count(*) FROM pair_errors) AS error_rows FROM pair_stats s
               WHERE s.bad_records <> (SELECT count(*) FROM pair_errors)""",
    ),
]
