"""The end-to-end proof of issue 9: a removal request filed against a published row makes the next
release lack it, the diff name it (as a hash), and every check pass. Real Dagster instance, real dbt,
real DuckDB and parquet; the re-derive touches no shard (no re-download, no re-score).

The pipeline runs once per session (`published_sample` in conftest.py, shared with
test_release_removal_sha1_e2e.py); each test starts from that first publish, restored."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.files import verify_release_dir
from laion_assets.core.schemas import RELEASE_SCHEMA
from laion_assets.definitions import build_definitions
from laion_assets.runner import _run, failed_checks
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e


def _rows(release_dir: Path) -> dict[int, dict]:
    t = pq.read_table(sorted(release_dir.glob("part-*.parquet")))
    return {r["SAMPLE_ID"]: r for r in t.to_pylist()}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.event_specific_data.materialization.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()}


def test_removal_request_rederives_a_new_version_with_a_diff(published_sample):
    root, first = published_sample.root, published_sample.first
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        assert failed_checks(instance, first.run_ids) == []
        before = _rows(first.release_dir)
        manifest = json.loads((first.release_dir / "manifest.json").read_text())
        funnel = manifest["funnel"]

        # The funnel adds up row for row, against the shards' own files.
        pairs = sum(pq.read_table(p).num_rows for p in root.glob("SAMPLE-CRAWL/pairs/?????.parquet"))
        assert funnel["pairs_extracted"] == pairs == sum(funnel["dropped"].values()) + len(before)
        assert {"below_threshold", "duplicate", "placeholder_image"} <= set(funnel["dropped"])
        assert any(r.startswith("not_downloaded:") for r in funnel["dropped"])
        # Compatible, reproducible files: no local path, no fetch time, licences reach the release.
        assert pq.read_schema(first.release_dir / "part-00000.parquet").equals(RELEASE_SCHEMA)
        assert all(not r["warc_path"].startswith("/") and str(root) not in r["warc_path"] for r in before.values())
        assert any(r["LICENSE"] for r in before.values())
        assert verify_release_dir(first.release_dir) == []

        # A photographer asks for two images: one by its URL's sha256, one by the image's sha256; a
        # hash list names a third by a PDQ hash 12 bits away from the downloader's (a near duplicate).
        by_url, by_image, by_pdq = sorted(before.values(), key=lambda r: r["SAMPLE_ID"])[:3]
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            pdq, quality = con.sql(f"SELECT pdq, pdq_quality FROM published_pairs WHERE sample_id = {by_pdq['SAMPLE_ID']}").fetchall()[0]
        assert quality >= 50
        near = f"{int(pdq, 16) ^ 0xFFF:064x}"
        requests = root / "removal" / "requests"
        requests.mkdir(parents=True)
        (requests / "photographer-2026.url_sha256.txt").write_text(
            "# filed 2026-11-25\n" + hashlib.sha256(by_url["URL"].encode()).hexdigest() + "\nnot-a-hash\n")
        (requests / "hashlist.csv").write_text(f"kind,value,listed_on\nimage_sha256,{by_image['sha256']},2026-11-20\n"
                                               f"pdq,{near},2026-11-20\n")

        rederive = _run(defs, "publish_job", instance, "WARNING")
        assert failed_checks(instance, [rederive.run_id]) == []
        touched = _materialized(rederive)
        assert "published_dataset" in touched and "removal_list" in touched
        assert not touched & {"image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs"}

        mat = rederive.asset_materializations_for_node("published_dataset")[-1]
        new_dir = Path(mat.metadata["path"].value)
        new_version = mat.metadata["version"].value
        assert new_version != first.release_version
        after = _rows(new_dir)
        assert set(before) - set(after) == {by_url["SAMPLE_ID"], by_image["SAMPLE_ID"], by_pdq["SAMPLE_ID"]}
        assert set(after) <= set(before)
        new_manifest = json.loads((new_dir / "manifest.json").read_text())
        sources = new_manifest["removal"]["sources"]
        # Duplicate copies of a removed pair are removed too (removal comes before dedup).
        assert sources["photographer-2026.url_sha256.txt"]["rows_removed"] >= 1 and sources["hashlist.csv"]["rows_removed"] >= 1
        assert new_manifest["funnel"]["dropped"]["removal:photographer-2026.url_sha256.txt"] == sources["photographer-2026.url_sha256.txt"]["rows_removed"]
        assert verify_release_dir(new_dir) == []
        assert pq.read_table(root / "removal" / "rejected.parquet").num_rows == 1

        # The diff names the removed rows by hashes and reason, never by URL.
        variant = new_manifest["variant"]["name"]
        diff_path = root / "releases" / variant / "diffs" / f"{first.release_version}__{new_version}.parquet"
        diff = pq.read_table(diff_path).to_pylist()
        # Both sources are hash lists: their rows are listed without the source, each among 9 rows
        # still published (padding), so the diff does not tell a holder which URLs a list flagged.
        flagged = {hashlib.sha256(r["URL"].encode()).hexdigest() for r in (by_url, by_image, by_pdq)}
        assert {d["reason"] for d in diff} == {"removal"} and len(diff) == 3 + 3 * 9
        assert flagged <= {d["url_sha256"] for d in diff}
        padding = {d["SAMPLE_ID"] for d in diff} - set(before.keys() - after.keys())
        assert len(padding) == 27 and padding <= set(after)
        summary = json.loads(diff_path.with_suffix(".json").read_text())
        assert summary["rows_removed"] == 3 and summary["removed_by_reason"] == {"removal": 3}
        assert b"hashlist" not in diff_path.read_bytes()  # the rows never name the list (the summary says it was padded)
        published_text = diff_path.read_bytes() + diff_path.with_suffix(".json").read_bytes()
        assert by_url["URL"].encode() not in published_text and by_image["URL"].encode() not in published_text
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            assert con.sql("SELECT count(*) FROM drop_log WHERE reason LIKE 'removal:%'").fetchall()[0][0] >= 3
            assert con.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'drop_log' "
                           "AND column_name = 'url'").fetchall()[0][0] == 0

        # The same removal applied again: the same version, byte-identical manifest and card.
        files = {p.name: p.read_bytes() for p in new_dir.iterdir()}
        again = _run(defs, "publish_job", instance, "WARNING")
        assert again.asset_materializations_for_node("published_dataset")[-1].metadata["version"].value == new_version
        assert {p.name: p.read_bytes() for p in new_dir.iterdir()} == files
        assert failed_checks(instance, [again.run_id]) == []
