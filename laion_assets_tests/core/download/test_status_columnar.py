"""`download/status.conform_status` (the purge's columnar path) against the row objects it replaces:
the same table, byte for byte once written, for a status file as the downloader writes it, one
written before `sha1` existed, one with only the columns the release bench writes, and one with a
column the schema does not know."""

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.download.blocklist import removed_row
from laion_assets.core.download.status import RowResult, conform_status, rows_to_table, table_to_rows
from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA


def _rows() -> list[RowResult]:
    t = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    ok = RowResult("000000001", "http://a.example/1.jpg", "ok", None, None, 200, "image/jpeg", 1234, 640, 480,
                   256, 192, "a" * 64, "b" * 32, "c" * 40, "d" * 64, 87, "00000.tar", "00000_000000001.jpg",
                   1, 12.5, t)
    failed = RowResult("000000002", "http://b.example/2.png", attempts=3, elapsed_ms=1.25).fail("timeout", "read timed out")
    removed = removed_row("000000003", "http://c.example/3.jpg", "removal:hotline", ok)
    skipped = RowResult("000000004", "http://d.example/ü.webp").fail("robots_txt")
    return [ok, failed, removed, skipped]


def _bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _stored(table: pa.Table) -> pa.Table:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return pq.read_table(io.BytesIO(sink.getvalue()))


def test_conform_status_equals_the_row_objects_round_trip():
    full = _stored(rows_to_table(_rows()))
    older = full.drop_columns(["sha1"])  # a status file from before sha1
    bench = full.select(["key", "url", "status", "sha256"])  # bench/release.py's minimal status files
    extra = full.append_column("something_else", pa.array([1, 2, 3, 4]))
    for table in (full, older, bench, extra):
        want = rows_to_table(table_to_rows(table))
        got = conform_status(table)
        assert got.schema == DOWNLOAD_SCHEMA
        assert got.equals(want)
        assert _bytes(got) == _bytes(want)
    # the defaults of missing columns are RowResult's (status has none missing here; attempts 0)
    assert conform_status(bench).column("attempts").to_pylist() == [0, 0, 0, 0]
    assert conform_status(older).column("sha1").null_count == 4
