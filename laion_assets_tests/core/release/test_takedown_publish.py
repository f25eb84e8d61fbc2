"""Takedowns on the publish path (real dbt warehouse, local and S3 roots): untouched parts keep their
names and bytes, a mass removal is held until confirmed, hash-list diffs hide what the list flagged,
and every earlier version holding a removed row is withdrawn."""

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.checks import LossLimits
from laion_assets.core.release.files import ReleaseVariant
from laion_assets.core.release.publish import PublishOptions, ReleaseBlocked, publish_release
from laion_assets.core.release.withdraw import offered_versions, tombstone_path
from laion_assets.core.storage.layout import REMOVAL_ENTRIES, WAREHOUSE, diff_path, release_dir
from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.s3 import S3Credentials, S3Storage
from laion_assets.testing.s3 import TEST_CREDENTIALS, moto_s3

BUCKET = "takedowns"
from laion_assets_tests.dbt.test_dbt import _build, _row, _write

VARIANT = ReleaseVariant("v", 1.0)


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as server:
        server.create_bucket(BUCKET)
        yield server


def _s3_storage(s3, tmp_path: Path) -> S3Storage:
    creds = S3Credentials(endpoint_url=s3.endpoint_url, region="us-east-1",
                          access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    return S3Storage(f"s3://{BUCKET}/{tmp_path.name}", s3.client(), credentials=creds, cache_dir=tmp_path / "cache")


def _sync(root: Path, st) -> None:
    """What the dbt asset does on an S3 root: the warehouse and the removal list go up to the bucket."""
    st.upload_file(root / WAREHOUSE, WAREHOUSE)
    st.upload_file(root / REMOVAL_ENTRIES, REMOVAL_ENTRIES)


def _rows(n: int, host=lambda i: "a.example" if i % 3 else "b.example"):
    return [_row(f"{i:09d}", f"http://{host(i)}/{i}.jpg", f"caption {i}", 0.5, i) for i in range(n)]


def _entries(*entries):
    return [{"kind": k, "value": v, "source": s, "listed_on": None} for k, v, s in entries]


def _setup(tmp_path, monkeypatch, rows, entries=()):
    root = tmp_path / "root"
    _write(root, "C1", {"00000": rows}, entries=entries)
    assert _build(root, tmp_path, monkeypatch)
    return root


def _parts(root: Path, version: str) -> dict[str, str]:
    d = root / release_dir("v", version)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("part-*.parquet"))}


def test_a_removal_rewrites_only_the_parts_it_touches(tmp_path, monkeypatch):
    rows = _rows(41)  # 5 parts of 10; 40 rows after the removal would be 4 fresh parts, every range moved
    root = _setup(tmp_path, monkeypatch, rows)
    st, opts = LocalStorage(root), PublishOptions(rows_per_part=10)
    before = publish_release(st, [VARIANT], opts)
    old = _parts(root, before.version)
    assert len(old) == 5
    _setup(tmp_path, monkeypatch, rows, _entries(("url", rows[7]["url"], "req")))
    after = publish_release(st, [VARIANT], opts)
    new = _parts(root, after.version)
    assert set(new) == set(old)  # 40 rows still in the previous version's 5 ranges
    assert sum(old[n] != new[n] for n in old) == 1  # only the part that held the removed row changed


def test_a_mass_removal_is_held_until_its_source_is_confirmed(tmp_path, monkeypatch):
    rows = _rows(60)  # every third row on b.example: 20 rows
    root = _setup(tmp_path, monkeypatch, rows)
    st = LocalStorage(root)
    first = publish_release(st, [VARIANT])
    _setup(tmp_path, monkeypatch, rows, _entries(("domain", "b.example", "sweep")))
    with pytest.raises(ReleaseBlocked, match=r"removal lists would take out 20 of 60 rows .*removal:sweep 20"):
        publish_release(st, [VARIANT])
    assert (root / "releases" / "v" / "LATEST").read_text().strip() == first.version  # nothing moved
    confirmed = publish_release(st, [VARIANT], PublishOptions(limits=LossLimits(
        confirmed_sources=("sweep",), max_lost_fraction=0.5)))
    assert confirmed.variants["v"]["rows"] == 40


def test_losing_rows_to_failed_downloads_is_held(tmp_path, monkeypatch):
    rows = _rows(30)
    root = _setup(tmp_path, monkeypatch, rows)
    st = LocalStorage(root)
    publish_release(st, [VARIANT])
    # the next crawl pass lost most images: those pairs are now in the drop log as not downloaded
    drops = [{"crawl": "C1", "shard": "00000", "key": r["key"], "url": r["url"], "text": r["text"],
              "reason": "not_downloaded:timeout"} for r in rows[:20]]
    root2 = tmp_path / "root"
    _write(root2, "C1", {"00000": rows[20:]}, drops=drops)
    assert _build(root2, tmp_path, monkeypatch)
    with pytest.raises(ReleaseBlocked, match=r"20 of 30 previous rows would be lost .*20 because their images "
                                             r"were not downloaded .*not_downloaded:timeout 20"):
        publish_release(st, [VARIANT])


def test_hash_list_diffs_hide_the_flagged_rows_among_unchanged_ones(tmp_path, monkeypatch):
    rows = _rows(40)
    root = _setup(tmp_path, monkeypatch, rows)
    st = LocalStorage(root)
    first = publish_release(st, [VARIANT])
    flagged = hashlib.sha256(rows[5]["url"].encode()).hexdigest()
    _setup(tmp_path, monkeypatch, rows, _entries(("url_sha256", flagged, "hotline"), ("url", rows[9]["url"], "owner")))
    after = publish_release(st, [VARIANT], PublishOptions(diff_pad=4))
    name = diff_path("v", first.version, after.version)
    diff = pq.read_table(root / f"{name}.parquet").to_pylist()
    reasons = sorted(d["reason"] for d in diff)
    assert reasons == ["removal"] * 5 + ["removal:owner"]  # 1 flagged + 4 padding; the owner's request by name
    assert flagged in {d["url_sha256"] for d in diff} and "hotline" not in json.dumps(diff)
    summary = json.loads((root / f"{name}.json").read_text())
    assert summary["rows_removed"] == 2 and summary["rows_listed"] == 6 and summary["modes"] == {"hotline": "padded"}
    assert "hotline" not in summary["removed_by_reason"] and summary["removed_by_reason"] == {"removal": 1, "removal:owner": 1}


def test_every_offered_version_holding_a_removed_row_is_withdrawn_on_s3(tmp_path, monkeypatch, s3):
    rows = _rows(12)
    root = _setup(tmp_path, monkeypatch, rows)
    st = _s3_storage(s3, tmp_path)
    _sync(root, st)
    v1 = publish_release(st, [VARIANT]).version
    _setup(tmp_path, monkeypatch, rows[:11])  # an unrelated change: a new version, v1 still offered
    _sync(root, st)
    v2 = publish_release(st, [VARIANT], PublishOptions(max_unexplained_drop_fraction=0.2)).version
    assert offered_versions(st, "v") == [v1, v2]
    _setup(tmp_path, monkeypatch, rows[:11], _entries(("url", rows[2]["url"], "req")))
    _sync(root, st)
    v3 = publish_release(st, [VARIANT]).version
    assert offered_versions(st, "v") == [v3]
    for old in (v1, v2):
        tomb = json.loads(st.read_bytes(tombstone_path("v", old)))
        assert tomb["replaced_by"] == v3 and tomb["rows_removed_by_reason"] == {"removal:req": 1}
        assert [p for p in st.list(release_dir("v", old), ".parquet")] == []
    held = [p for p in st.list(release_dir("v", v3), ".parquet")]
    urls = {u for p in held for u in st.read_parquet(p).column("URL").to_pylist()}
    assert rows[2]["url"] not in urls and len(urls) == 10


def _sync_root(root: Path, st) -> None:
    """The whole local root (shard tables, warehouse, removal list) into the S3 root: the shard
    tables under the root are what the release index's inputs fingerprint reads."""
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith((".wal", ".lock")):
            st.upload_file(p, p.relative_to(root).as_posix())


def _objects(s3, st, variant: str, version: str) -> dict[str, tuple[str, int]]:
    """{part name: (ETag, size)} of a version's parts as the bucket holds them."""
    out = {}
    for rel in st.list(release_dir(variant, version), ".parquet"):
        head = s3.client().head_object(Bucket=BUCKET, Key=st.key(rel))
        out[rel.rsplit("/", 1)[1]] = (head["ETag"], head["ContentLength"])
    return out


def test_an_incremental_rederive_on_s3_copies_untouched_parts_server_side(tmp_path, monkeypatch, s3):
    rows = _rows(41)  # 5 parts of 10
    root = _setup(tmp_path, monkeypatch, rows)
    st, local = _s3_storage(s3, tmp_path), LocalStorage(root)
    _sync_root(root, st)
    opts = PublishOptions(rows_per_part=10)
    first = publish_release(st, [VARIANT], opts)
    assert publish_release(local, [VARIANT], opts).version == first.version  # the same build on a local root
    before = _objects(s3, st, "v", first.version)
    _setup(tmp_path, monkeypatch, rows, _entries(("url", rows[7]["url"], "req")))
    _sync(root, st)  # the new removal list (and the warehouse dbt built on it); the shard tables as they were
    after = publish_release(st, [VARIANT], opts)
    assert after.mode == "incremental", after.mode_reason
    rewritten = after.variants["v"]["incremental"]["parts_rewritten"]
    assert len(rewritten) == 1  # the part (by SAMPLE_ID range) that held the removed row
    now = _objects(s3, st, "v", after.version)
    assert set(now) == set(before) and len(now) == 5
    # Untouched parts keep their bytes and ETags; only the part that held the row is new.
    assert [n for n in sorted(now) if now[n] != before[n]] == rewritten
    # ...and never passed through this machine: no cached copy of an untouched part (a download
    # through the local cache put one there before server-side copies).
    cached = st.cache_dir / "files" / release_dir("v", first.version)
    assert not cached.exists() or sorted(p.name for p in cached.iterdir()) == []
    # Withdrawal deleted the old version's parts on S3 and left its tombstone.
    assert st.list(release_dir("v", first.version), ".parquet") == []
    tomb = json.loads(st.read_bytes(tombstone_path("v", first.version)))
    assert tomb["replaced_by"] == after.version and tomb["rows_removed_by_reason"] == {"removal:req": 1}
    assert st.exists(f"{release_dir('v', after.version)}/_COMPLETE")
    # The full build of the same request (the local root's warehouse): the same version (names, rows
    # and sha256 of every part), part for part the same bytes as the objects (ETag: their MD5).
    full = publish_release(local, [VARIANT], PublishOptions(rows_per_part=10, incremental=False))
    assert full.mode == "full" and full.version == after.version
    parts = sorted((root / release_dir("v", full.version)).glob("part-*.parquet"))
    assert {p.name: (f'"{hashlib.md5(p.read_bytes()).hexdigest()}"', p.stat().st_size) for p in parts} == now
