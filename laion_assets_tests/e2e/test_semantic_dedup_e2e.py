"""Semantic dedup as a release variant's option, on a real publish (Dagster's publish_job: dbt, then
published_dataset, then search_index) of the session's sample.

The sample holds semantic near-duplicates by construction: several different renders of the same
colour and shape (`img/<n>-<colour>-<shape>.jpg`), whose tiny-model image embeddings have cosine
>= 0.95 with each other, and <= 0.64 with every other shape in the `sample-safe` rows. At a 0.9
threshold the expected drops are therefore known without SemDeDup: in each colour+shape group,
every row but the best-scored one (ties: the smaller SAMPLE_ID).
"""

from __future__ import annotations

import json
from collections import defaultdict

import dagster as dg
import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.files import ReleaseVariant
from laion_assets.core.release.semantic import semantic_duplicates
from laion_assets.core.release.writer import ReleaseRows
from laion_assets.core.search import layout as search_layout
from laion_assets.core.storage.layout import RELEASE_SEMANTIC_DROPS
from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.runner import failed_checks
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e
DEDUP = "sample-safe-dedup"
MIN_COSINE = 0.9


def _publish(defs, instance, semantic_dedup: dict[str, float]) -> dg.ExecuteInProcessResult:
    config = {"variants": {"sample": 1.0, "sample-safe": 0.45, DEDUP: 0.45}, "semantic_dedup": semantic_dedup}
    result = defs.resolve_job_def("publish_job").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"ops": {"published_dataset": {"config": config}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    assert failed_checks(instance, [result.run_id]) == []
    return result


def _parts(root, variant: str, version: str):
    return pq.read_table(sorted((root / "releases" / variant / version).glob("part-*.parquet")))


def _expected_drops(rows) -> set[int]:
    groups = defaultdict(list)
    for r in rows.to_pylist():
        groups[r["URL"].rsplit("/", 1)[-1].split("-", 1)[1]].append(r)  # "<colour>-<shape>.jpg"
    drops = set()
    for members in groups.values():
        members.sort(key=lambda r: (-r["similarity"], r["SAMPLE_ID"]))
        drops |= {r["SAMPLE_ID"] for r in members[1:]}
    return drops


def test_a_variant_with_semantic_dedup_drops_exactly_the_near_duplicates(published_sample):
    root = published_sample.root
    defs = build_definitions(load_settings())
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        # First with dedup off: the new variant holds what sample-safe holds.
        off = _publish(defs, instance, {})
        versions = off.asset_materializations_for_node("published_dataset")[-1].metadata["variants"].value
        safe = _parts(root, "sample-safe", versions["sample-safe"]["version"])
        assert versions[DEDUP]["rows"] == safe.num_rows
        expected = _expected_drops(safe)
        assert 2 <= len(expected) < safe.num_rows  # the sample does hold near-duplicates

        on = _publish(defs, instance, {DEDUP: MIN_COSINE})
        meta = on.asset_materializations_for_node("published_dataset")[-1].metadata["variants"].value
        assert meta["sample-safe"]["version"] == versions["sample-safe"]["version"]  # other variants untouched
        version = meta[DEDUP]["version"]
        assert version != versions[DEDUP]["version"]
        published = _parts(root, DEDUP, version)
        kept = set(published.column("SAMPLE_ID").to_pylist())
        assert kept == set(safe.column("SAMPLE_ID").to_pylist()) - expected

        # The drop log beside the parts: exactly those rows, the reason, the better-scored row each duplicates.
        log = pq.read_table(root / "releases" / DEDUP / version / RELEASE_SEMANTIC_DROPS).to_pylist()
        assert {r["sample_id"] for r in log} == expected
        assert {r["reason"] for r in log} == {"semantic_duplicate"}
        by_id = {r["SAMPLE_ID"]: r for r in safe.to_pylist()}
        for r in log:
            dropped, kept_row = by_id[r["sample_id"]], by_id[r["duplicate_of"]]
            assert r["duplicate_of"] in kept and r["similarity"] >= MIN_COSINE
            assert dropped["URL"].split("-", 1)[1] == kept_row["URL"].split("-", 1)[1]
            assert (kept_row["similarity"], -kept_row["SAMPLE_ID"]) > (dropped["similarity"], -dropped["SAMPLE_ID"])

        # The manifest's funnel and the card count them; the diff names the rows it took out.
        release_dir = root / "releases" / DEDUP / version
        manifest = json.loads((release_dir / "manifest.json").read_text())
        assert manifest["variant"]["semdedup_min_cosine"] == MIN_COSINE
        assert manifest["funnel"]["dropped"]["semantic_duplicate"] == len(expected)
        assert manifest["semantic_dedup"]["dropped"] == len(expected)
        assert manifest["semantic_dedup"]["rows_compared"] == safe.num_rows
        card = (release_dir / "README.md").read_text()
        assert f"| `semantic_duplicate` | {len(expected)} |" in card
        assert "## Semantic duplicates removed" in card and f"**{len(expected)}** of {safe.num_rows}" in card
        assert "semdedup_min_cosine" not in json.loads((root / "releases" / "sample-safe" / versions["sample-safe"]["version"]
                                             / "manifest.json").read_text())["variant"]
        diff = pq.read_table(root / "releases" / DEDUP / "diffs" / f"{versions[DEDUP]['version']}__{version}.parquet")
        assert sorted(diff.column("SAMPLE_ID").to_pylist()) == sorted(expected)
        assert set(diff.column("reason").to_pylist()) == {"semantic_duplicate"}
        assert meta[DEDUP]["diff"]["removed_by_reason"] == {"semantic_duplicate": len(expected)}

        # The variant's search index holds the kept rows only.
        index_version = (root / search_layout.latest_pointer(DEDUP)).read_text().strip()
        assert index_version == version
        indexed = pq.read_table(root / search_layout.index_dir(DEDUP, version) / search_layout.METADATA_FILE)
        assert set(indexed.column("SAMPLE_ID").to_pylist()) == kept

        # Reproducible: publishing again gives the same version; computing again the same ids.
        again = _publish(defs, instance, {DEDUP: MIN_COSINE})
        assert again.asset_materializations_for_node("published_dataset")[-1].metadata["variants"].value[DEDUP][
            "version"] == version
    st = LocalStorage(root)
    variant = ReleaseVariant(DEDUP, 0.45, MIN_COSINE)
    runs = []
    for _ in range(2):
        with ReleaseRows.from_warehouse(st.local_file("warehouse.duckdb")) as rows:
            runs.append(semantic_duplicates(st, rows, variant).table)
    assert runs[0].equals(runs[1]) and set(runs[0].column("sample_id").to_pylist()) == expected
