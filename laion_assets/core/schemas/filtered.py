"""Schemas of `filtered_pairs`: the kept pairs of a shard, and the drop log of the pairs it did not keep.

Contract relied on downstream (dbt `stg_filtered_pairs`, `stg_shard_drops`): every column below.
Every pair of the shard's `pairs` table is in exactly one of the two files, so the release card's
funnel adds up row for row. Image hashes: `sha256`, `md5`, `sha1` of the original bytes and `pdq`
(64 lowercase hex chars, `pdq_quality` 0..100), from the download status; NULL where a shard's
status predates a column (`filter.OPTIONAL_DOWNLOAD_COLUMNS`). Only `sha256` is published.
`sample_id` (core.ids) and `url_host` (core.removal.host_sql, lowercase, '' when none) are computed
here, once per pair, so the release never re-derives them for every row of every crawl; so are
`url_canonical` / `host_canonical` (kept pairs only), which removal matching compares.
"""

import pyarrow as pa

FILTERED_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("url_host", pa.string()),
        # Canonical URL and host (core.removal.canonical, WHATWG): what removal entries are matched
        # against; NULL where the URL has no canonical form (and in shards written before them).
        pa.field("url_canonical", pa.string()),
        pa.field("host_canonical", pa.string()),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("warc_path", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64(), nullable=False),
        pa.field("license", pa.string()),
        pa.field("language", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("md5", pa.string()),
        pa.field("sha1", pa.string()),
        pa.field("pdq", pa.string()),
        pa.field("pdq_quality", pa.int32()),
        pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
        pa.field("similarity", pa.float32()),
        pa.field("threshold", pa.float32()),
        pa.field("model_id", pa.string()),
        pa.field("weights_id", pa.string()),
        pa.field("punsafe", pa.float32()),
        pa.field("punsafe_source", pa.string()),
        pa.field("nsfw", pa.string()),
    ]
)

# Reasons: not_downloaded:<download reason>, opt_out:<rule>, not_scored:<reason>, no_similarity,
# below_threshold, nsfw_policy (shard-level NSFW drop, off by default: variants cut at release time).
DROP_LOG_SCHEMA = pa.schema(
    [
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
