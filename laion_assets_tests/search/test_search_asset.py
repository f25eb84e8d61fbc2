"""`search_index` in the real graph: built by the publish job, rebuilt by a takedown's re-derive,
the removed row in no index (the old version deleted), its neighbours listed as candidates only,
the audit report in the asset's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from laion_assets.core.search import layout
from laion_assets.core.search.requests import file_removal_request
from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.runner import _run, failed_checks
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e


def _index_versions(root: Path, variant: str) -> list[str]:
    return sorted(p.name for p in (root / "search" / variant).iterdir() if p.is_dir())


def test_publish_builds_the_index_and_a_takedown_rebuilds_it_without_the_row(published_sample):
    root, first = published_sample.root, published_sample.first
    st = LocalStorage(root)
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        assert failed_checks(instance, first.run_ids) == []
        mat = instance.get_latest_materialization_event(dg.AssetKey("search_index")).asset_materialization
        assert "audit_report" in mat.metadata and "| query |" in mat.metadata["audit_report"].value
        assert mat.metadata["sample_rows"].value == first.release_rows
        assert _index_versions(root, "sample") == [first.release_version]
        old_meta = pq.read_table(root / layout.index_dir("sample", first.release_version) / layout.METADATA_FILE)
        row = next(r for r in old_meta.to_pylist() if "square" in r["TEXT"])

        # Filed as the page files it; the re-derive publishes a new version and rebuilds the index.
        rid, _ = file_removal_request(st, row, reason="my photo", contact="me@example.org")
        rederive = _run(defs, "publish_job", instance, "WARNING")
        assert failed_checks(instance, [rederive.run_id]) == []
        new_version = rederive.asset_materializations_for_node("published_dataset")[-1].metadata["version"].value
        assert new_version != first.release_version
        mat = rederive.asset_materializations_for_node("search_index")[-1]
        assert _index_versions(root, "sample") == [new_version]  # the old index (with the row) is gone
        new_dir = root / layout.index_dir("sample", new_version)
        new_meta = pq.read_table(new_dir / layout.METADATA_FILE)
        assert row["SAMPLE_ID"] not in new_meta.column("SAMPLE_ID").to_pylist()
        release = pq.read_table(sorted((root / "releases" / "sample" / new_version).glob("part-*.parquet")))
        assert sorted(new_meta.column("SAMPLE_ID").to_pylist()) == sorted(release.column("SAMPLE_ID").to_pylist())
        manifest = json.loads((new_dir / layout.MANIFEST).read_text())
        assert manifest["rows"] == release.num_rows == mat.metadata["sample_rows"].value
        import faiss

        for name in (layout.IMAGE_INDEX, layout.TEXT_INDEX):
            assert faiss.read_index(str(new_dir / name)).ntotal == release.num_rows
        # Candidates for a reviewer, never removed: each names the removed row and a row still published.
        cands = pq.read_table(new_dir / layout.CANDIDATES).to_pylist()
        assert mat.metadata["sample_takedown_candidates"].value == len(cands)
        assert all(c["removed_sample_id"] == row["SAMPLE_ID"] for c in cands)
        assert {c["candidate_sample_id"] for c in cands} <= set(release.column("SAMPLE_ID").to_pylist())
        check = [e for e in instance.get_records_for_run(rederive.run_id).records
                 if e.event_log_entry.dagster_event and e.event_log_entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert check
