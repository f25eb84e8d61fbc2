"""The diff between a variant's previous version and this one: removed rows by hashes, with a reason."""

from __future__ import annotations

import duckdb
import pyarrow as pa

def release_diff(previous: pa.Table, current_ids: pa.Array, reasons: pa.Table) -> pa.Table:
    """Rows of the previous version not in this one, as hashes: (url_sha256, SAMPLE_ID, reason).

    `previous` has SAMPLE_ID and URL; `reasons` has sample_id and reason (drop log + NSFW drops);
    a row gone without a drop-log entry gets `not_in_build` (e.g. its shard is gone).
    """
    with duckdb.connect(":memory:") as con:
        con.register("prev", previous.select(["SAMPLE_ID", "URL"]))
        con.register("cur", pa.table({"id": current_ids}))
        con.register("why", reasons)
        return con.sql("""
            SELECT sha256(p.URL) AS url_sha256, p.SAMPLE_ID,
                   coalesce((SELECT min(w.reason) FROM why w WHERE w.sample_id = p.SAMPLE_ID), 'not_in_build') AS reason
            FROM prev p WHERE p.SAMPLE_ID NOT IN (SELECT id FROM cur)
            ORDER BY reason, url_sha256
        """).to_arrow_table()
