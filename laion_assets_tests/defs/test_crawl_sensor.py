"""crawl_discovery_sensor with a real instance: partitions registered, cursor advanced, once per crawl."""

import json
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from laion_assets.core.crawl.manifest import select_crawls
from laion_assets.core.storage.local import LocalStorage
from laion_assets.defs.crawl.sensors import crawl_discovery_sensor
from laion_assets.defs.lib.partitions import shard_partitions
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.testing.commoncrawl import put_cc_layout, source_warcs
from laion_assets.testing.s3 import moto_s3


def _tick(instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = crawl_discovery_sensor(ctx)
    if isinstance(result, dg.SensorResult):  # what the daemon does with the result
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def test_local_root_registers_each_new_crawl_once(tmp_path: Path):
    crawls = tmp_path / "crawls"
    warcs = source_warcs(limit=3)
    for name, n in (("CC-MAIN-2098-50", 1), ("CC-MAIN-2099-01", 3), ("CC-MAIN-2099-05", 2), ("notes", 1)):
        (crawls / name).mkdir(parents=True)
        for i in range(n):
            (crawls / name / f"{i:05d}.warc.gz").write_bytes(warcs[i].read_bytes())
    (crawls / "CC-MAIN-2099-09").mkdir()  # announced, no files yet: not ready
    root = tmp_path / "data"
    resources = {
        "storage": StorageResource(root=str(root)),
        "crawl_source": CrawlSourceResource(crawl="", source_dir="", files_per_shard=2, discovery_root=str(crawls),
                                            discover_newer_than="CC-MAIN-2098-52"),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, resources, None)
        assert isinstance(first, dg.SensorResult)
        assert sorted(instance.get_dynamic_partitions(shard_partitions.name)) == ["CC-MAIN-2099-01/00000", "CC-MAIN-2099-01/00001"]
        assert json.loads(first.cursor) == ["CC-MAIN-2099-01"]
        manifest = LocalStorage(root).read_parquet("manifests/CC-MAIN-2099-01.parquet")
        assert manifest.num_rows == 3 and all(p.startswith("CC-MAIN-2099-01/") for p in manifest.column("warc_path").to_pylist())
        assert [e.asset_key for e in first.asset_events] == [dg.AssetKey("crawl_manifest")]

        second = _tick(instance, resources, first.cursor)
        assert json.loads(second.cursor) == ["CC-MAIN-2099-01", "CC-MAIN-2099-05"]
        assert len(instance.get_dynamic_partitions(shard_partitions.name)) == 3

        third = _tick(instance, resources, second.cursor)
        assert isinstance(third, dg.SkipReason)
        assert len(instance.get_dynamic_partitions(shard_partitions.name)) == 3


def test_commoncrawl_bucket_with_an_explicit_list(tmp_path: Path):
    with moto_s3() as s3:
        s3.create_bucket("commoncrawl")
        for crawl in ("CC-MAIN-2099-01", "CC-MAIN-2099-05", "CC-MAIN-2099-09"):
            put_cc_layout(s3.client(), "commoncrawl", crawl, source_warcs(limit=2))
        resources = {
            "storage": StorageResource(root=str(tmp_path / "data")),
            "crawl_source": CrawlSourceResource(
                crawl="", source_dir="", files_per_shard=1, discovery_root="s3://commoncrawl/crawl-data/",
                discover_only=["CC-MAIN-2099-05", "CC-MAIN-2099-09"], discover_max_crawls_per_tick=5,
                s3=S3Resource(
                    endpoint_url=s3.endpoint_url, region_name="us-east-1", use_unsigned_session=True),
            ),
        }
        with dg.DagsterInstance.ephemeral() as instance:
            first = _tick(instance, resources, None)
            assert json.loads(first.cursor) == ["CC-MAIN-2099-05", "CC-MAIN-2099-09"]
            keys = sorted(instance.get_dynamic_partitions(shard_partitions.name))
            assert keys == ["CC-MAIN-2099-05/00000", "CC-MAIN-2099-05/00001", "CC-MAIN-2099-09/00000", "CC-MAIN-2099-09/00001"]
            manifest = LocalStorage(tmp_path / "data").read_parquet("manifests/CC-MAIN-2099-05.parquet")
            assert all(p.startswith("crawl-data/CC-MAIN-2099-05/segments/") for p in manifest.column("warc_path").to_pylist())
            assert isinstance(_tick(instance, resources, first.cursor), dg.SkipReason)


def test_select_crawls_filters():
    names = ["CC-MAIN-2024-10", "CC-MAIN-2024-22", "CC-MAIN-2025-05", "notes", "..", "CC-NEWS-2025"]
    assert select_crawls(names, newer_than="CC-MAIN-2024-10") == ["CC-MAIN-2024-22", "CC-MAIN-2025-05"]
    assert select_crawls(names, only=["CC-MAIN-2024-10", ".."]) == ["CC-MAIN-2024-10"]


def test_bad_storage_and_crawl_settings_fail_naming_the_setting():
    import pytest

    with pytest.raises(Exception, match=r"crawl_source.files_per_shard=0: must be >= 1"):
        CrawlSourceResource(crawl="x", source_dir="y", files_per_shard=0)
    with pytest.raises(Exception, match=r"crawl_source.discover_max_crawls_per_tick=0"):
        CrawlSourceResource(crawl="x", source_dir="y", discover_max_crawls_per_tick=0)
    with pytest.raises(Exception, match=r"LAION_ASSETS_ROOT='s3://'"):
        StorageResource(root="s3://")
