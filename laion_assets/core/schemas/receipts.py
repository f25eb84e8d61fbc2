"""Removal receipts' table (`removal/receipts.parquet`, core/removal/receipts.py): one row per filed
request and release variant it landed in (variant/version null while pending or rejected)."""

import pyarrow as pa

RECEIPTS_SCHEMA = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("file", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("entries_accepted", pa.int64(), nullable=False),
    pa.field("entries_rejected", pa.int64(), nullable=False),
    pa.field("variant", pa.string()),
    pa.field("version", pa.string()),
    pa.field("rows_removed", pa.int64()),
    pa.field("rows_matched", pa.int64()),
    pa.field("filed_at", pa.string()),
    pa.field("landed_at", pa.string()),
])
