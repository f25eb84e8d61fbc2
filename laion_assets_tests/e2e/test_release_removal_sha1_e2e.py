"""An `image_sha1` removal entry, the kind researchers' hash lists use, removes a published row.

The sha1 is computed here from the bytes the sample's image server serves (not from anything the
pipeline wrote), filed as a removal request, and the next release (re-derived, no shard re-run)
lacks the row, its diff lists it by hash (padded: a hash list's rows are hidden among unchanged ones), and every check passes. Real
Dagster instance, real dbt, real DuckDB and parquet, the real sample image server. The pipeline
runs once per session (`published_sample` in conftest.py); this test starts from its first publish."""

import hashlib
import json
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from laion_assets.core.checks import run_checks
from laion_assets.core.release.checks import CHECKS as RELEASE_CHECKS
from laion_assets.core.release.files import verify_release_dir
from laion_assets.core.sample.server import lease_sample_server, recorded_port
from laion_assets.definitions import build_definitions
from laion_assets.runner import _run, failed_checks
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e
SOURCE = "researchers-sha1.image_sha1.txt"  # a filed request is named by its whole file name


def _served_bytes(root: Path, url: str) -> bytes:
    """The image as the sample server serves it (holding a lease so the server stays up)."""
    sample = root / "sample-crawl"
    with lease_sample_server(sample, recorded_port(sample), root / "sample-crawl.server-lease"):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as r:
            return r.read()


def test_image_sha1_removal_entry_removes_the_row_from_the_next_release(published_sample):
    root, first = published_sample.root, published_sample.first
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        assert failed_checks(instance, first.run_ids) == []
        first_parts = sorted(first.release_dir.glob("part-*.parquet"))
        first_table = pq.read_table(first_parts)  # kept: the re-derive withdraws this version (its parts go)
        before = {r["SAMPLE_ID"]: r for r in first_table.to_pylist()}
        target = sorted(before.values(), key=lambda r: r["SAMPLE_ID"])[len(before) // 2]
        body = _served_bytes(root, target["URL"])
        assert hashlib.sha256(body).hexdigest() == target["sha256"]  # the bytes the downloader hashed
        sha1 = hashlib.sha1(body).hexdigest()
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            # dbt's staging sees the downloader's sha1 on every kept row, and the target's is ours.
            assert con.sql("SELECT count(*) FROM stg_filtered_pairs WHERE sha1 IS NULL").fetchall() == [(0,)]
            published = con.sql(f"SELECT sha1 FROM published_pairs WHERE sample_id = {target['SAMPLE_ID']}")
            assert published.fetchall() == [(sha1,)]
            hashes = con.sql("SELECT sample_id AS SAMPLE_ID, md5, sha1, pdq, CAST(pdq_quality AS INTEGER) "
                             "AS pdq_quality, url_canonical, host_canonical FROM stg_filtered_pairs").to_arrow_table()

        requests = root / "removal" / "requests"
        requests.mkdir(parents=True)
        (requests / SOURCE).write_text(f"# listed 2026-11-25\n{sha1.upper()}\n")
        rederive = _run(defs, "publish_job", instance, "WARNING")
        assert failed_checks(instance, [rederive.run_id]) == []
        touched = {e.event_specific_data.materialization.asset_key.to_user_string()
                   for e in rederive.get_asset_materialization_events()}
        assert not touched & {"image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs"}

        mat = rederive.asset_materializations_for_node("published_dataset")[-1]
        new_dir, new_version = Path(mat.metadata["path"].value), mat.metadata["version"].value
        assert new_version != first.release_version
        after = {r["SAMPLE_ID"] for r in pq.read_table(sorted(new_dir.glob("part-*.parquet"))).to_pylist()}
        assert set(before) - after == {target["SAMPLE_ID"]} and after <= set(before)
        manifest = json.loads((new_dir / "manifest.json").read_text())
        assert manifest["removal"]["sources"][SOURCE]["rows_removed"] == 1
        assert manifest["funnel"]["dropped"][f"removal:{SOURCE}"] == 1
        assert verify_release_dir(new_dir) == []

        diffs = root / "releases" / manifest["variant"]["name"] / "diffs"
        diff_path = diffs / f"{first.release_version}__{new_version}.parquet"
        # An image-hash list is padded: the row is listed as plain `removal` among 9 rows still published.
        diff = pq.read_table(diff_path).to_pylist()
        assert (hashlib.sha256(target["URL"].encode()).hexdigest(), target["SAMPLE_ID"], "removal") in [
            (d["url_sha256"], d["SAMPLE_ID"], d["reason"]) for d in diff]
        assert len(diff) == 10 and {d["reason"] for d in diff} == {"removal"}
        assert {d["SAMPLE_ID"] for d in diff} - {target["SAMPLE_ID"]} <= after
        assert target["URL"].encode() not in diff_path.read_bytes() + diff_path.with_suffix(".json").read_bytes()

        # The release's blocking removal check has teeth on sha1: over the old release it finds the row.
        no_match = [c for c in RELEASE_CHECKS if c.name == "release_no_removal_match"]
        views = {"release_hashes": hashes, "removal": root / "removal" / "entries.parquet"}
        old = run_checks({**views, "release": first_table}, no_match)[0]
        assert not list(first.release_dir.glob("part-*.parquet"))  # the old version held the row: withdrawn
        new = run_checks({**views, "release": sorted(new_dir.glob("part-*.parquet"))}, no_match)[0]
        assert (old.passed, old.failing_rows, new.passed) == (False, 1, True)
