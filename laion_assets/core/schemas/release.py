"""Schema of a published release: LAION's columns first, then provenance and opt-out fields.

Existing tools read it unchanged (img2dataset `--url_col URL --caption_col TEXT`, clip-retrieval).
"""

import pyarrow as pa

RELEASE_SCHEMA = pa.schema(
    [
        pa.field("SAMPLE_ID", pa.int64(), nullable=False),
        pa.field("URL", pa.string(), nullable=False),
        pa.field("TEXT", pa.string(), nullable=False),
        pa.field("HEIGHT", pa.int32()),
        pa.field("WIDTH", pa.int32()),
        pa.field("LICENSE", pa.string()),
        pa.field("NSFW", pa.string()),
        pa.field("punsafe", pa.float32()),
        pa.field("similarity", pa.float32(), nullable=False),
        pa.field("LANGUAGE", pa.string()),
        pa.field("hash", pa.string()),
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("warc_path", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
        pa.field("model_id", pa.string()),
    ]
)
