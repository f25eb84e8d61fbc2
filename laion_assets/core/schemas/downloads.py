"""Schema of `image_downloads`' status parquet: exactly one row per input pair, so nothing is lost.

Contract relied on downstream: key, url, status, reason, width, height, sha256, pdq, pdq_quality,
tar_path, tar_member. `status` is one of DOWNLOAD_STATUSES; `reason` is null for `ok` rows and otherwise a
word from the download module's fixed vocabulary. `tar_path` is relative to the shard's image folder;
`tar_member` is the member name of the image, `<shard>_<key>.jpg`: unique across a crawl, no dots in
the WebDataset key (`laion_assets.core.download.keys.image_member` maps a row to it).
`sha256`, `md5`, `sha1` are hex digests of the original bytes as fetched (before any decode), null
when there is no image; `sha1` is newer than the others: status files written before it lack the
column (readers treat it as optional, see `core/filter/shard.py`), and rows carried over from such a file
keep it null (the original bytes are not stored, only the re-encoded image).
`pdq` is the PDQ perceptual hash of the image (64 lowercase hex chars = 256 bits, the reference
tool's hex order), null when there is no image; `pdq_quality` is PDQ's quality, 0..100.
"""

import pyarrow as pa

DOWNLOAD_STATUSES = ("ok", "skipped", "failed")

DOWNLOAD_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("error", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("content_type", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("resized_width", pa.int32()),
        pa.field("resized_height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("md5", pa.string()),
        pa.field("sha1", pa.string()),
        pa.field("pdq", pa.string()),
        pa.field("pdq_quality", pa.int32()),
        pa.field("tar_path", pa.string()),
        pa.field("tar_member", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("elapsed_ms", pa.float32()),
        pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
    ]
)

# The `tar_members` check view: every member of a shard's tars (core/download/writer.list_tar_members).
TAR_MEMBERS_SCHEMA = pa.schema([pa.field("tar_path", pa.string()), pa.field("member", pa.string())])
