"""The core publish path on a real warehouse (real `dbt build` over shard parquet): plan, check,
commit every variant or none, a same-rows rebuild, a removal re-derived into a new version + diff."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.files import ReleaseVariant, verify_release_dir
from laion_assets.core.release.publish import PublishOptions, ReleaseBlocked, latest_version, publish_release, read_release
from laion_assets.core.release.withdraw import tombstone_path
from laion_assets.core.storage.layout import RELEASES_LATEST, diff_path, release_dir
from laion_assets.core.storage.local import LocalStorage
from laion_assets_tests.dbt.test_dbt import _build, _row, _write

ROWS = [_row("000000000", "http://a.example/1.jpg", "a red circle", 0.5, 10),
        _row("000000001", "http://a.example/2.jpg", "a blue star", 0.4, 20),
        _row("000000002", "http://b.example/3.jpg", "a green cross", 0.6, 30)]


def _publish(st: LocalStorage, *variants: ReleaseVariant, **options):
    return publish_release(st, list(variants), PublishOptions(rows_per_part=2, **options))


def test_publish_commits_checked_variants_rebuilds_same_version_and_rederives_a_removal(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    _write(root, "C1", {"00000": ROWS[:2], "00001": ROWS[2:]})
    assert _build(root, tmp_path, monkeypatch)
    st = LocalStorage(root)
    every, safe = ReleaseVariant("all", 1.0), ReleaseVariant("safe", 0.5)

    first = _publish(st, every, safe)
    assert first.default_variant == "all" and all(o.passed for o in first.outcomes) and not first.card_problems
    assert first.variants["all"]["rows"] == 3
    assert st.read_bytes(RELEASES_LATEST).decode().strip() == f"all/{first.version}"
    release = root / release_dir("all", first.version)
    assert verify_release_dir(release) == []
    assert len(list(release.glob("part-*.parquet"))) == 2  # 3 rows at 2 per part
    assert sorted(read_release(st, "all", first.version).column("URL").to_pylist()) == sorted(r["url"] for r in ROWS)

    again = _publish(st, every, safe)
    assert again.version == first.version and again.variants["all"]["diff"] is None
    assert again.variants["all"]["row_check"] == "same version rebuilt"

    _write(root, "C1", {"00000": ROWS[:2], "00001": ROWS[2:]},
           entries=[{"kind": "url", "value": "http://a.example/2.jpg", "source": "req", "listed_on": None}])
    assert _build(root, tmp_path, monkeypatch)
    after = _publish(st, every, safe)
    assert after.version != first.version and after.variants["all"]["rows"] == 2
    assert latest_version(st, "all") == after.version
    diff = pq.read_table(root / f"{diff_path('all', first.version, after.version)}.parquet").to_pylist()
    assert [d["reason"] for d in diff] == ["removal:req"]
    assert after.facts["removal"]["rows_removed"] == 1
    # the old version held the removed row: withdrawn, its parts gone, a tombstone names the new one
    tomb = json.loads((root / tombstone_path("all", first.version)).read_text())
    assert tomb["replaced_by"] == after.version and tomb["rows_removed_by_reason"] == {"removal:req": 1}
    assert not list((root / release_dir("all", first.version)).glob("part-*.parquet"))
    assert after.variants["all"]["withdrawn"] == [first.version]


def test_a_failing_variant_publishes_nothing(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    _write(root, "C1", {"00000": ROWS})
    assert _build(root, tmp_path, monkeypatch)
    st = LocalStorage(root)
    with pytest.raises(ReleaseBlocked, match="none: row count: release would be empty"):
        _publish(st, ReleaseVariant("some", 1.0), ReleaseVariant("none", 0.0))  # punsafe 0.1 > 0.0: empty
    assert not st.exists(RELEASES_LATEST) and latest_version(st, "some") is None
    assert not (root / "releases").exists() or not any((root / "releases").rglob("*.parquet"))
