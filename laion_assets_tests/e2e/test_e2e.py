"""The whole asset graph on the sample crawl, in a real (temporary) Dagster instance."""

import json
import re
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from laion_assets.core.storage.local import LocalStorage
from laion_assets.definitions import build_definitions
from laion_assets.runner import check_evaluations, failed_checks, run_pipeline
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e


def _release_pairs(release_dir: Path) -> list[tuple[str, str]]:
    rows = []
    for part in sorted(release_dir.glob("part-*.parquet")):
        t = pq.read_table(part, columns=["URL", "TEXT"])
        rows += list(zip(t.column("URL").to_pylist(), t.column("TEXT").to_pylist()))
    return rows


def test_sample_crawl_to_release(embedded_env, tmp_path: Path):
    root = Path(embedded_env["LAION_ASSETS_ROOT"])
    defs = build_definitions(load_settings())
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        run = run_pipeline(defs, instance)

        expected = sorted(tuple(x) for x in json.loads((LocalStorage(root).local_dir("sample-crawl") / "expected.json").read_text()))
        got = _release_pairs(run.release_dir)
        assert len(got) == len(set(got)), "duplicates in the release"
        assert sorted(got) == expected
        assert failed_checks(instance, run.run_ids) == []
        assert check_evaluations(instance, run.run_ids) >= 5 * len(run.partition_keys)
        assert len(run.partition_keys) >= 2

        # The sample was built to need every stage: mismatched captions, duplicates, dead images.
        pairs = sum(pq.read_table(p).num_rows for p in root.glob("SAMPLE-CRAWL/pairs/?????.parquet"))
        statuses = [s for p in root.glob("SAMPLE-CRAWL/images/*.parquet")
                    for s in pq.read_table(p, columns=["status"]).column("status").to_pylist()]
        assert statuses.count("ok") < len(statuses) == pairs
        manifest = json.loads((run.release_dir / "manifest.json").read_text())
        funnel = manifest["pipeline_stats"]
        assert funnel["duplicates_removed"] >= 1
        assert funnel["pairs_extracted"] == pairs and funnel["images_ok"] == statuses.count("ok")
        assert funnel["pairs_published"] == len(got) == funnel["pairs_before_dedup"] - funnel["duplicates_removed"]
        assert len(got) < statuses.count("ok")  # CLIP dropped the mismatched captions

        # A second run replaces partitions instead of adding to them: same release, same files (a
        # committed directory's version name is a content hash: tars re-packed by the re-run differ).
        def listing() -> list[str]:
            # Each full publish writes its release index under a new generation (release-index/g-<random>/).
            return sorted(re.sub(r"release-index/g-[0-9a-f]+/", "release-index/g-*/",
                                 re.sub(r"/v-[0-9a-f]{16}/", "/v-*/", str(p.relative_to(root))))
                          for p in root.rglob("*") if p.is_file())

        files_before = listing()
        again = run_pipeline(defs, instance)
        assert again.release_version == run.release_version
        assert sorted(_release_pairs(again.release_dir)) == expected
        files_after = listing()
        assert files_after == files_before
