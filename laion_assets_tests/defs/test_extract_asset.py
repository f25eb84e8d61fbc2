"""`image_text_pairs` in a real Dagster instance: a shard past the bad-record ratio fails clearly."""

import gzip
import io
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings


def _warc(path: Path, pages: int, garbage: int) -> None:
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(pages):
            body = f'<html><body><img src="http://img.example/{i}.jpg" alt="a caption number {i}"></body></html>'.encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                f"http://page.example/{i}.html", "response", payload=io.BytesIO(body), http_headers=headers))
        for _ in range(garbage):  # gzip members that are not WARC records
            out.write(gzip.compress(b"this is not a WARC record\r\n\r\n"))


def _materialize(instance, defs, key):
    job = defs.resolve_job_def("shard_job")
    return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                  op_selection=["image_text_pairs"])


def test_damaged_shard_fails_with_reasons_and_keeps_the_record(embedded_env, tmp_path: Path):
    root = Path(embedded_env["LAION_ASSETS_ROOT"])
    src = tmp_path / "warcs"
    src.mkdir()
    _warc(src / "a.warc.gz", pages=4, garbage=0)
    _warc(src / "b.warc.gz", pages=2, garbage=6)
    defs = build_definitions(load_settings())
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        manifest = defs.resolve_job_def("crawl_job").execute_in_process(
            instance=instance, op_selection=["crawl_manifest"],
            run_config={"ops": {"crawl_manifest": {"config": {"crawl": "TEST-CRAWL", "source_dir": str(src),
                                                              "files_per_shard": 1}}}})
        assert manifest.success
        assert sorted(instance.get_dynamic_partitions("shards")) == ["TEST-CRAWL/00000", "TEST-CRAWL/00001"]

        good = _materialize(instance, defs, "TEST-CRAWL/00000")
        assert good.success
        assert good.asset_materializations_for_node("image_text_pairs")[0].metadata["input_format"].value == "warc"
        assert pq.read_table(root / "TEST-CRAWL/pairs/00000.parquet").num_rows == 4

        bad = _materialize(instance, defs, "TEST-CRAWL/00001")
        assert not bad.success
        failure = next(e for e in bad.all_events if e.is_step_failure)
        assert "bad" in failure.event_specific_data.error.message.lower()
        errors = pq.read_table(root / "TEST-CRAWL/pairs/00001.errors.parquet")
        assert errors.num_rows >= 1 and all(errors.column("reason").to_pylist())
        assert not (root / "TEST-CRAWL/pairs/00001.parquet").exists()
