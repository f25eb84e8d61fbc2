from pathlib import Path

import pyarrow as pa
import pytest

from laion_assets.core.crawl.checks import CHECKS
from laion_assets.core.crawl.manifest import list_local_warcs, make_shards, manifest_table, shard_uris, validate_crawl_name
from laion_assets.core.checks import run_checks


def test_shards_group_sorted_files_and_are_stable(tmp_path: Path):
    for name in ["b.warc.gz", "a.warc.gz", "c.warc", "notes.txt", "d.wat.gz"]:
        (tmp_path / name).write_bytes(b"x")
    uris = list_local_warcs(tmp_path)
    assert [Path(u).name for u in uris] == ["a.warc.gz", "b.warc.gz", "c.warc", "d.wat.gz"]
    shards = make_shards("CC-MAIN-2024-22", uris, 3)
    assert [s.partition_key for s in shards] == ["CC-MAIN-2024-22/00000", "CC-MAIN-2024-22/00001"]
    assert [len(s.warc_uris) for s in shards] == [3, 1]
    assert make_shards("CC-MAIN-2024-22", uris, 3) == shards
    manifest = manifest_table(shards)
    assert shard_uris(manifest, "00001") == [uris[3]]
    with pytest.raises(KeyError, match="not in the crawl manifest"):
        shard_uris(manifest, "00009")


def test_bad_inputs_say_what_is_wrong(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_local_warcs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no WARC files"):
        list_local_warcs(tmp_path)
    with pytest.raises(ValueError, match="crawl name"):
        validate_crawl_name("CC MAIN/2024")
    with pytest.raises(ValueError, match="files_per_shard"):
        make_shards("c", ["a"], 0)
    with pytest.raises(ValueError, match="duplicate"):
        make_shards("c", ["a", "a"], 1)


def test_manifest_checks_pass_and_fail(tmp_path: Path):
    good = manifest_table(make_shards("c", ["a", "b", "c"], 2))
    assert all(o.passed for o in run_checks({"manifest": good}, CHECKS))
    uneven = manifest_table(make_shards("c", ["a", "b", "c"], 2)[1:] + make_shards("c", ["d", "e"], 2))
    uneven = uneven.set_column(1, "shard", pa.array(["00000", "00001", "00001"]))
    outcomes = {o.name: o for o in run_checks({"manifest": uneven}, CHECKS)}
    assert not outcomes["manifest_shard_sizes"].passed
    doubled = manifest_table(make_shards("c", ["a", "b"], 1) + make_shards("c", ["a"], 1))
    outcomes = {o.name: o for o in run_checks({"manifest": doubled}, CHECKS)}
    assert not outcomes["manifest_unique_files"].passed
    assert outcomes["manifest_unique_files"].sample[0]["warc_uri"] == "a"


def test_sample_crawl_bytes_are_the_same_on_every_build(tmp_path: Path):
    """The sample WARCs (warcinfo included) are byte-identical wherever they are built, so every WARC
    offset, and with them the demo release's version, is the same on every machine."""
    from laion_assets.core.sample.crawl import build_sample_crawl

    a = build_sample_crawl(tmp_path / "a", "http://127.0.0.1:18765")
    b = build_sample_crawl(tmp_path / "b", "http://127.0.0.1:18765")
    files = sorted(p.name for p in a.warc_dir.iterdir())
    assert files and files == sorted(p.name for p in b.warc_dir.iterdir())
    for name in files:
        assert (a.warc_dir / name).read_bytes() == (b.warc_dir / name).read_bytes(), name
