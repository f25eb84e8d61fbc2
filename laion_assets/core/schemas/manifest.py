"""`manifests/<crawl>.parquet`: one row per WARC file of a crawl, in shards of K files."""

import pyarrow as pa

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("partition_key", pa.string(), nullable=False),
        pa.field("warc_uri", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("warc_path", pa.string(), nullable=False),
    ]
)
