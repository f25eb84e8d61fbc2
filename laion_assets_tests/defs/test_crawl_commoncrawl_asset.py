"""crawl_manifest + image_text_pairs on a bucket laid out like Common Crawl's, read anonymously."""

from pathlib import Path

import dagster as dg

from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets.testing.commoncrawl import put_cc_layout, source_warcs
from laion_assets.testing.s3 import moto_s3

CRAWL = "CC-MAIN-2099-01"


def test_manifest_and_extraction_from_a_commoncrawl_bucket(embedded_env, tmp_path: Path, monkeypatch):
    with moto_s3() as s3:
        s3.create_bucket("commoncrawl")
        put_cc_layout(s3.client(), "commoncrawl", CRAWL, source_warcs(limit=4))
        monkeypatch.setenv("LAION_CRAWL_S3_ENDPOINT_URL", s3.endpoint_url)
        defs = build_definitions(load_settings())
        (tmp_path / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
            source = f"s3://commoncrawl/crawl-data/{CRAWL}/warc.paths.gz"
            manifest = defs.resolve_job_def("crawl_job").execute_in_process(
                instance=instance, op_selection=["crawl_manifest"],
                run_config={"ops": {"crawl_manifest": {"config": {"crawl": CRAWL, "source_dir": source,
                                                                  "files_per_shard": 2}}}})
            assert manifest.success
            assert sorted(instance.get_dynamic_partitions("shards")) == [f"{CRAWL}/00000", f"{CRAWL}/00001"]
            result = defs.resolve_job_def("shard_job").execute_in_process(
                instance=instance, partition_key=f"{CRAWL}/00000", op_selection=["image_text_pairs"],
                run_config={"ops": {"image_text_pairs": {"config": {"max_bad_record_ratio": 1.0}}}})
            assert result.success
        st = LocalStorage(embedded_env["LAION_ASSETS_ROOT"])
        pairs = st.read_parquet(f"{CRAWL}/pairs/00000.parquet")
        assert pairs.num_rows > 0
        paths = set(pairs.column("warc_path").to_pylist())
        assert all(p.startswith(f"crawl-data/{CRAWL}/segments/") and p.endswith(".warc.gz") for p in paths), paths
