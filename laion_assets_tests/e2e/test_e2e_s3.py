"""The whole asset graph with the storage root on S3 (moto's server on 127.0.0.1): same release rows."""

import json
from pathlib import Path

import dagster as dg
import pytest

from laion_assets.core.storage.s3 import S3Storage
from laion_assets.definitions import build_definitions
from laion_assets.runner import failed_checks, run_pipeline
from laion_assets.settings import load_settings
from laion_assets.testing.s3 import moto_s3

pytestmark = pytest.mark.e2e


def test_sample_crawl_to_release_on_s3(embedded_env, tmp_path: Path, monkeypatch):
    with moto_s3() as s3:
        s3.create_bucket("laion-e2e")
        for k, v in {**s3.env, "LAION_ASSETS_ROOT": "s3://laion-e2e/builds/one",
                     "LAION_LOCAL_CACHE": str(tmp_path / "cache")}.items():
            monkeypatch.setenv(k, v)
        defs = build_definitions(load_settings())
        st = S3Storage("s3://laion-e2e/builds/one", s3.client(), cache_dir=tmp_path / "reader-cache")
        (tmp_path / "dagster_home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
            run = run_pipeline(defs, instance, log_level="WARNING")
            assert failed_checks(instance, run.run_ids) == []
            # nothing in the event log (metadata, messages) carries the secret key
            secret = s3.env["AWS_SECRET_ACCESS_KEY"]
            for run_id in run.run_ids:
                for record in instance.all_logs(run_id):
                    assert secret not in str(record)

        expected = sorted(tuple(x) for x in json.loads(st.read_bytes(f"{st.live_relpath('sample-crawl')}/expected.json")))
        release = st.read_bytes("releases/LATEST").decode().strip()  # <variant>/<version>
        assert release.endswith("/" + run.release_version)
        table = st.read_parquet_many(st.list(f"releases/{release}", ".parquet"))
        assert st.exists(f"releases/{release}/_COMPLETE")
        got = sorted(zip(table.column("URL").to_pylist(), table.column("TEXT").to_pylist()))
        assert got == expected and len(got) == run.release_rows
        # provenance names the crawl's own path, not where this build read it
        pairs = st.read_parquet_many([p for p in st.list("SAMPLE-CRAWL/pairs", ".parquet") if p[-13:-8].isdigit()])
        paths = set(pairs.column("warc_path").to_pylist())
        paths |= set(st.read_parquet("manifests/SAMPLE-CRAWL.parquet").column("warc_path").to_pylist())
        assert paths and all(p.startswith("sample-crawl/warc/") for p in paths), paths
        assert not Path(embedded_env["LAION_ASSETS_ROOT"]).exists(), "a local root was written"
