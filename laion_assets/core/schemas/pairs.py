"""Schema of `image_text_pairs`: one row per kept `<img>` (or WAT `IMG@/src`) with alt text.

Contract relied on downstream: key, url, text, page_url, crawl, warc_path, warc_offset,
caption_language, license, optout_page (and optout_reasons).
`key` is unique within a shard (zero-padded row index, 9 digits) and names the WebDataset members.
"""

import pyarrow as pa

PAIR_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("warc_path", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64(), nullable=False),
        pa.field("warc_record_id", pa.string()),
        pa.field("warc_date", pa.string()),
        pa.field("page_title", pa.string()),
        pa.field("page_language", pa.string()),
        pa.field("caption_language", pa.string()),
        pa.field("caption_language_score", pa.float32()),
        pa.field("caption_language_reliable", pa.bool_()),
        pa.field("license", pa.string()),
        pa.field("optout_page", pa.bool_(), nullable=False),
        pa.field("optout_reasons", pa.string()),
        # trafilatura's signals (ExtractConfig.main_content_signals; null when off, on the WAT path, or
        # when it failed on the page): the image is in the page's main content; its title and site name.
        pa.field("in_main_content", pa.bool_()),
        pa.field("main_title", pa.string()),
        pa.field("site_name", pa.string()),
    ]
)

# One row per WARC record that could not be read or parsed; the shard keeps going.
PAIR_ERROR_SCHEMA = pa.schema(
    [
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("warc_path", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64()),
        pa.field("target_uri", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
    ]
)
