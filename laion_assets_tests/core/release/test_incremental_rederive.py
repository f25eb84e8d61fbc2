"""Incremental re-derive (core/release/incremental.py) against the full build, on a real dbt
warehouse: the same parts, versions, manifests, cards and diffs for every entry kind; only the
parts holding a removed row are read and rewritten; and each case where only a full build is right
takes the full build, saying why."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.core.release.checks import LossLimits
from laion_assets.core.release.files import ReleaseVariant
from laion_assets.core.release.publish import PublishOptions, publish_release
from laion_assets.core.release.release_index import IndexLayout
from laion_assets.core.release.withdraw import tombstone_path
from laion_assets.core.release.writer import part_bounds, part_of
from laion_assets.core.removal.canonical import canonical_host, canonical_url
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, normalize, pdq_hex
from laion_assets.core.storage.layout import RELEASE_INDEX_STATE, REMOVAL_ENTRIES, release_dir
from laion_assets.core.storage.local import LocalStorage
from laion_assets_tests.dbt.test_dbt import _build, _row, _write

VARIANTS = [ReleaseVariant("v", 1.0), ReleaseVariant("safe", 0.5)]
LIMITS = LossLimits(max_removal_fraction=1.0, max_lost_fraction=1.0)
OPTS = PublishOptions(rows_per_part=10, limits=LIMITS)
# The lookup files cut small: 16 keys per key file, row groups of 4 rows.
SPLIT_OPTS = dataclasses.replace(OPTS, index_layout=IndexLayout(key_file_rows=16, key_row_group=4))
SMALL_GROUPS_OPTS = dataclasses.replace(OPTS, index_layout=IndexLayout(key_row_group=4))


def _bits(i: int) -> list[int]:
    h = hashlib.sha256(f"pdq{i}".encode()).digest()
    return [(h[j // 8] >> (j % 8)) & 1 for j in range(256)]


def _rows(n: int = 60) -> list[dict]:
    out = []
    for i in range(n):
        url = f"http://h{i % 7}.example/img/{i}.jpg"
        out.append(_row(f"{i:09d}", url, f"caption {i}", 0.5, i, url_canonical=canonical_url(url),
                        host_canonical=canonical_host(f"h{i % 7}.example"), punsafe=(i % 10) / 10,
                        sha256=hashlib.sha256(f"img{i}".encode()).hexdigest(),
                        md5=hashlib.md5(f"img{i}".encode()).hexdigest(), sha1=hashlib.sha1(f"img{i}".encode()).hexdigest(),
                        pdq=pdq_hex(_bits(i)), pdq_quality=80))
    # a pair that occurs twice (shard 00001 holds the copy with the lower score: dropped as duplicate)
    return out


def _entries(rows: list[dict]) -> list[dict]:
    """One entry of every kind, each taking out other rows, spelt as a requester would."""
    r = {i: rows[i] for i in range(len(rows))}
    near = _bits(40)
    for j in (3, 70, 200):  # 3 bits away: within the PDQ threshold
        near[j] ^= 1
    raw = [("url_md5", hashlib.md5(r[1]["url"].encode()).hexdigest()),
           ("url_sha1", hashlib.sha1(r[12]["url"].encode()).hexdigest()),
           ("url_sha256", hashlib.sha256(r[23]["url"].encode()).hexdigest()),
           ("image_md5", r[33]["md5"]), ("image_sha1", r[45]["sha1"].upper()), ("image_sha256", r[56]["sha256"]),
           ("url", r[17]["url"].replace("http://h3.example", "HTTP://H3.Example.:80")),
           ("url_prefix", "http://h5.EXAMPLE/img/5"),  # rows 5 and 5x
           ("domain", "H6.example."), ("pdq", pdq_hex(near))]
    return [{"kind": k, "value": normalize(k, v), "source": f"req-{k}", "listed_on": None,
             "host": None} for k, v in raw]


def _with_hosts(entries):
    from laion_assets.core.removal.entries import entry_host

    return [{**e, "host": entry_host(e["kind"], e["value"])} for e in entries]


def _file_entries(root: Path, entries) -> None:
    pq.write_table(pa.Table.from_pylist(_with_hosts(entries), schema=REMOVAL_SCHEMA), root / REMOVAL_ENTRIES)


def _published(tmp_path, monkeypatch, rows, shards=None, opts=None):
    root = tmp_path / "root"
    _write(root, "C1", shards or {"00000": rows[:30], "00001": rows[30:]})
    assert _build(root, tmp_path, monkeypatch)
    first = publish_release(LocalStorage(root), VARIANTS, opts or OPTS)
    assert first.mode == "full" and (root / RELEASE_INDEX_STATE).exists()
    return root, first


def _full(root: Path, tmp_path, monkeypatch):
    assert _build(root, tmp_path, monkeypatch)
    return publish_release(LocalStorage(root), VARIANTS, PublishOptions(rows_per_part=10, limits=LIMITS, incremental=False))


def _files(root: Path, variant: str, version: str) -> dict[str, bytes]:
    d = root / release_dir(variant, version)
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("layout", ["one_key_file", "split_key_files"])
def test_incremental_equals_the_full_rederive_for_every_entry_kind(tmp_path, monkeypatch, layout):
    # split: what a large release gets (keys in buckets, URLs in several files), cut small
    opts = SPLIT_OPTS if layout == "split_key_files" else OPTS
    rows = _rows()
    root, first = _published(tmp_path, monkeypatch, rows, opts=opts)
    state = json.loads((root / RELEASE_INDEX_STATE).read_text())
    assert (len(state["keys"]["k_url"]) > 1 and len(state["keys"]["urls"]) > 1) == (layout == "split_key_files")
    other = tmp_path / "full"
    shutil.copytree(root, other, symlinks=True)
    entries = _entries(rows)
    _file_entries(root, entries)
    _file_entries(other, entries)
    inc = publish_release(LocalStorage(root), VARIANTS, opts)
    full = _full(other, tmp_path, monkeypatch)
    assert inc.mode == "incremental", inc.mode_reason
    assert full.mode == "full"
    removed_by = inc.facts["removal"]["sources"]
    # every kind took out what it names (the prefix two rows, the domain every h6 row)
    assert {s: v["rows_removed"] for s, v in removed_by.items()} == {
        s: v["rows_removed"] for s, v in full.facts["removal"]["sources"].items()}
    assert all(v["rows_removed"] >= 1 for v in removed_by.values()), removed_by
    assert inc.facts == full.facts
    for v in VARIANTS:
        a, b = inc.variants[v.name], full.variants[v.name]
        assert a["version"] == b["version"] and a["rows"] == b["rows"] and a["diff"] == b["diff"]
        assert _files(root, v.name, a["version"]) == _files(other, v.name, b["version"])  # parts, manifest, card
        diff = f"releases/{v.name}/diffs/{a['previous']}__{a['version']}"
        for ext in (".parquet", ".json"):
            assert (root / f"{diff}{ext}").read_bytes() == (other / f"{diff}{ext}").read_bytes()
        tombs = [json.loads((r / tombstone_path(v.name, first.variants[v.name]["version"])).read_text()) for r in (root, other)]
        assert tombs[0]["rows_removed_by_reason"] == tombs[1]["rows_removed_by_reason"]
        assert tombs[0]["parts_deleted"] == tombs[1]["parts_deleted"]
    # the purge took the same rows out of the shards
    for sub in ("filtered", "drops", "images"):
        for shard in ("00000", "00001"):
            a = pq.read_table(root / "C1" / sub / f"{shard}.parquet").sort_by("key")
            b = pq.read_table(other / "C1" / sub / f"{shard}.parquet").sort_by("key")
            assert a.equals(b), (sub, shard)
    # and a second round of entries starts from the state the first one left
    more = [{"kind": "url", "value": normalize("url", rows[9]["url"]), "source": "req-more", "listed_on": None, "host": None}]
    _file_entries(root, entries + more)
    _file_entries(other, entries + more)
    inc2, full2 = publish_release(LocalStorage(root), VARIANTS, opts), _full(other, tmp_path, monkeypatch)
    assert inc2.mode == "incremental", inc2.mode_reason
    assert {n: m["version"] for n, m in inc2.variants.items()} == {n: m["version"] for n, m in full2.variants.items()}
    assert inc2.facts == full2.facts


def test_only_the_parts_holding_a_removed_row_are_read_and_rewritten(tmp_path, monkeypatch):
    rows = _rows()
    root, first = _published(tmp_path, monkeypatch, rows)
    version = first.variants["v"]["version"]
    d = root / release_dir("v", version)
    n = len(list(d.glob("part-*.parquet")))
    target = next(r for r in rows if r["punsafe"] <= 0.5)
    from laion_assets.core.lib.ids import sample_id

    touched = f"part-{part_of(sample_id(target['url'], target['text']), n):05d}.parquet"
    # Every other part is overwritten in place with bytes of the same size that are no parquet:
    # reading any of them (rows, footer, checksum) fails the re-derive.
    untouched = {}
    for p in sorted(d.glob("part-*.parquet")):
        if p.name != touched:
            size = p.stat().st_size
            p.write_bytes(b"\0" * size)
            untouched[p.name] = p.stat().st_ino
    _file_entries(root, [{"kind": "url", "value": normalize("url", target["url"]), "source": "req", "listed_on": None,
                          "host": None}])
    after = publish_release(LocalStorage(root), VARIANTS, OPTS)
    assert after.mode == "incremental", after.mode_reason
    new = root / release_dir("v", after.variants["v"]["version"])
    assert after.variants["v"]["incremental"]["parts_rewritten"] == [touched]
    for name, ino in untouched.items():  # the same file (a link), never rewritten
        assert (new / name).stat().st_ino == ino
    assert (new / touched).stat().st_ino != (d / touched).stat().st_ino if (d / touched).exists() else True
    assert after.variants["v"]["rows"] == first.variants["v"]["rows"] - 1
    assert "candidates in 1 of" in after.mode_reason  # one index file held the candidate


@pytest.mark.parametrize("change, why", [
    ("withdrawn_entry", "withdrawn"),
    ("shard_changed", "shard tables changed"),
    ("duplicate_copy", "another copy in the drop log"),
    ("variants", "variants changed"),
    ("placeholder_drop", "placeholder-image drops"),
])
def test_the_full_build_runs_whenever_the_index_could_be_wrong(tmp_path, monkeypatch, change, why):
    rows = _rows(30)
    if change == "placeholder_drop":  # one image behind 5 URLs: a placeholder, its 5 pairs dropped
        same = hashlib.sha256(b"placeholder").hexdigest()
        rows[20:25] = [{**r, "sha256": same} for r in rows[20:25]]
    dup = {**rows[4], "key": "000000099", "similarity": 0.4}  # the same pair again, lower score: dropped
    shards = {"00000": rows[:15], "00001": rows[15:] + [dup]}
    root = tmp_path / "root"
    entries = []
    if change == "withdrawn_entry":
        entries = [{"kind": "url", "value": normalize("url", rows[2]["url"]), "source": "old", "listed_on": None}]
    _write(root, "C1", shards, entries=_with_hosts(entries))
    assert _build(root, tmp_path, monkeypatch)
    publish_release(LocalStorage(root), VARIANTS, OPTS)
    variants = VARIANTS
    if change == "withdrawn_entry":
        _file_entries(root, [])
    elif change == "shard_changed":
        _write(root, "C1", {"00000": rows[:9] + rows[10:15], "00001": rows[15:] + [dup]})  # re-filtered: row 9 gone
        _file_entries(root, [{"kind": "url", "value": normalize("url", rows[20]["url"]), "source": "r", "listed_on": None}])
        assert _build(root, tmp_path, monkeypatch)
    elif change == "placeholder_drop":  # after the purge the image has 4 URLs: a full build may publish them
        _file_entries(root, [{"kind": "url", "value": normalize("url", rows[20]["url"]), "source": "r", "listed_on": None}])
        assert _build(root, tmp_path, monkeypatch)
    elif change == "duplicate_copy":
        _file_entries(root, [{"kind": "image_sha256", "value": rows[4]["sha256"], "source": "r", "listed_on": None}])
        assert _build(root, tmp_path, monkeypatch)
    else:
        variants = VARIANTS[:1]
    logged = []
    after = publish_release(LocalStorage(root), variants, OPTS, log=logged.append)
    assert after.mode == "full" and why in after.mode_reason, after.mode_reason
    assert any(why in line for line in logged)


def _key(hex_digest: str) -> int:
    return int(hex_digest[:16], 16) >> 1  # release_index.key_sql


def _zero_row_groups(path: Path, keep) -> int:
    """Overwrite with zeros the column chunks of every row group of `path` for which
    `keep(min, max)` of its first column is false (the footer stays intact): reading one fails."""
    meta = pq.ParquetFile(path).metadata
    spans = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(0).statistics
        if keep(stats.min, stats.max):
            continue
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
            spans.append((start, col.total_compressed_size))
    with open(path, "r+b") as f:
        for start, size in spans:
            f.seek(start)
            f.write(b"\0" * size)
    return len(spans)


def test_lookups_read_only_the_row_groups_and_index_files_that_may_hold_a_match(tmp_path, monkeypatch):
    """Key, URL and index files are read only where a new entry's key may be: every other row group of
    the key and URL files and every other index file is zeroed, and the re-derive still removes
    exactly the matching rows (a full scan of any of them, as before, fails on the zeroed bytes)."""
    rows = _rows()
    root, first = _published(tmp_path, monkeypatch, rows, opts=SMALL_GROUPS_OPTS)
    state = json.loads((root / RELEASE_INDEX_STATE).read_text())
    from laion_assets.core.lib.ids import sample_id

    prefix = "http://h5.example/img/5"  # rows 5 and 50..59 of host h5: 5 and 54 (i % 7 == 5)
    targets = {23: ("url_sha256", hashlib.sha256(rows[23]["url"].encode()).hexdigest()),
               17: ("url", rows[17]["url"].replace("http://h3.example", "HTTP://H3.Example.:80")),
               33: ("image_md5", rows[33]["md5"])}
    removed = [i for i in targets] + [i for i, r in enumerate(rows) if r["url"].startswith(prefix)]
    wanted = {"k_url_sha256": {_key(targets[23][1])}, "k_url": {_key(hashlib.md5(canonical_url(rows[17]["url"]).encode()).hexdigest())},
              "k_image_md5": {_key(rows[33]["md5"])},
              # the duplicate-image check looks up every removed row's image
              "k_image_sha256": {_key(rows[i]["sha256"]) for i in removed}}
    zeroed = 0
    for col, files in state["keys"].items():
        for f in files:
            if col == "urls":
                zeroed += _zero_row_groups(root / f, lambda lo, hi: lo <= prefix + "\uffff" and hi >= prefix)
            else:
                keys = wanted.get(col, set())
                zeroed += _zero_row_groups(root / f, lambda lo, hi, keys=keys: any(lo <= k <= hi for k in keys))
    assert zeroed > 20  # most row groups are gone
    # The index files that hold a removed row or overlap a part it is rewritten in (the checks read
    # the hash columns of every row written): the others are never read.
    files, ids = state["index_files"], [sample_id(rows[i]["url"], rows[i]["text"]) for i in removed]
    holding = {files[part_of(i, len(files))] for i in ids}
    for v in VARIANTS:
        n = state["variants"][v.name]["parts"]
        for p in {part_of(i, n) for i in ids}:
            lo, hi = part_bounds(n)[p], part_bounds(n)[p + 1] - 1
            holding.update(files[part_of(lo, len(files)):part_of(hi, len(files)) + 1])
    assert len(holding) < len(files)
    for f in set(files) - holding:
        (root / f).write_bytes(b"\0" * (root / f).stat().st_size)
    entries = [{"kind": k, "value": normalize(k, v), "source": f"req-{k}", "listed_on": None, "host": None}
               for k, v in targets.values()] + [
               {"kind": "url_prefix", "value": normalize("url_prefix", prefix), "source": "req-prefix", "listed_on": None,
                "host": None}]
    _file_entries(root, entries)
    after = publish_release(LocalStorage(root), VARIANTS, SMALL_GROUPS_OPTS)
    assert after.mode == "incremental", after.mode_reason
    assert {s: v["rows_removed"] for s, v in after.facts["removal"]["sources"].items()} == {
        "req-url_sha256": 1, "req-url": 1, "req-image_md5": 1, "req-prefix": 2}
    assert after.variants["v"]["rows"] == first.variants["v"]["rows"] - 5
