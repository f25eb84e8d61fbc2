"""LocalStorage: atomic files, directory commits that survive SIGKILL at every step, key validation."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.core.crawl.manifest import make_shards
from laion_assets.core.storage.base import POINTER_NAME, Storage
from laion_assets.core.storage.local import LocalStorage
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.core.storage.keys import make_partition_key, split_partition_key

COMMIT_STEPS = ["in_block", "staged", "version_written", "record_written", "superseded_removed"]


def test_staging_dir_replaces_whole_or_not_at_all(tmp_path: Path):
    st = LocalStorage(tmp_path)
    assert isinstance(st, Storage)
    with st.staging_dir("c/images/00000") as d:
        (d / "a.tar").write_bytes(b"1")
    with st.staging_dir("c/images/00000") as d:
        (d / "b.tar").write_bytes(b"2")
    assert sorted(p.name for p in st.local_dir("c/images/00000").iterdir()) == ["b.tar"]
    with pytest.raises(RuntimeError):
        with st.staging_dir("c/images/00000") as d:
            (d / "half.tar").write_bytes(b"3")
            raise RuntimeError("crash")
    assert sorted(p.name for p in st.local_dir("c/images/00000").iterdir()) == ["b.tar"]
    assert [p.name for p in st.path("c/images").iterdir()] == ["00000"]
    # only the live version and its pointer remain: superseded and failed versions are gone
    live = st.live_version("c/images/00000")
    assert sorted(p.name for p in st.path("c/images/00000").iterdir()) == sorted([POINTER_NAME, live])


def test_same_content_commits_to_the_same_version(tmp_path: Path):
    st = LocalStorage(tmp_path)
    for _ in range(2):
        with st.staging_dir("d") as d:
            (d / "x").write_bytes(b"same")
    assert len([p for p in st.path("d").iterdir() if p.name.startswith("v-")]) == 1


def test_record_table_commits_with_its_directory(tmp_path: Path):
    st = LocalStorage(tmp_path)
    with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
        (d / "00000.tar").write_bytes(b"tar")
        st.write_parquet(pa.table({"key": ["a"]}), "c/images/00000.parquet")
        assert not st.exists("c/images/00000.parquet"), "the record is written last, after the block"
    assert st.read_parquet("c/images/00000.parquet").column("key").to_pylist() == ["a"]
    assert (st.local_dir("c/images/00000") / "00000.tar").read_bytes() == b"tar"
    assert not st.exists(f"c/images/00000/{POINTER_NAME}")
    with pytest.raises(RuntimeError, match="without writing its record"):
        with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
            (d / "00000.tar").write_bytes(b"other")
    assert (st.local_dir("c/images/00000") / "00000.tar").read_bytes() == b"tar"
    with pytest.raises(ValueError, match="must be"):
        with st.staging_dir("c/images/00000", record="c/other.parquet"):
            pass


def test_parquet_roundtrip_and_no_escape(tmp_path: Path):
    st = LocalStorage(tmp_path)
    st.write_parquet(pa.table({"x": [1, 2]}), "a/b.parquet")
    st.write_parquet(pa.table({"x": [3]}), "a/b.parquet")
    assert st.read_parquet("a/b.parquet").column("x").to_pylist() == [3]
    assert [p.name for p in st.path("a").iterdir()] == ["b.parquet"]
    assert st.list("a", ".parquet") == ["a/b.parquet"]
    with pytest.raises(ValueError, match="escapes"):
        st.path("../outside")


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path):
    st = LocalStorage(tmp_path)
    st.path("a").mkdir()
    (st.path("a") / ".b.parquet.tmp-deadbeef").write_bytes(b"half")
    st.write_parquet(pa.table({"x": [1]}), "a/b.parquet")
    assert [p.name for p in st.path("a").iterdir()] == ["b.parquet"]


_KILLED_COMMIT = r"""
import os, signal, sys
import pyarrow as pa
from laion_assets.core.storage.local import LocalStorage
root, kill_at, with_record = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def hook(step):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
st = LocalStorage(root, on_commit_step=hook)
record = "c/images/00000.parquet" if with_record else None
with st.staging_dir("c/images/00000", record=record) as d:
    (d / "00000.tar").write_bytes(b"new-0")
    (d / "00001.tar").write_bytes(b"new-1")
    if with_record:
        st.write_parquet(pa.table({"gen": ["new", "new"]}), record)
    hook("in_block")
"""


def _visible_state(st: LocalStorage, with_record: bool) -> tuple:
    d = st.local_dir("c/images/00000")
    files = {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.is_dir() else {}
    gens = set(st.read_parquet("c/images/00000.parquet").column("gen").to_pylist()) if with_record else None
    return files, gens


@pytest.mark.parametrize("with_record", [True, False], ids=["record_table", "pointer"])
def test_sigkill_at_every_commit_step_leaves_old_or_new_never_a_mix(tmp_path: Path, with_record: bool):
    old = ({"00000.tar": b"old-0"}, {"old"} if with_record else None)
    new = ({"00000.tar": b"new-0", "00001.tar": b"new-1"}, {"new"} if with_record else None)
    for step in COMMIT_STEPS:
        root = tmp_path / step
        st = LocalStorage(root)
        record = "c/images/00000.parquet" if with_record else None
        with st.staging_dir("c/images/00000", record=record) as d:
            (d / "00000.tar").write_bytes(b"old-0")
            if with_record:
                st.write_parquet(pa.table({"gen": ["old"]}), record)
        proc = subprocess.run([sys.executable, "-c", _KILLED_COMMIT, str(root), step, "1" if with_record else "0"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == -9, proc.stderr
        state = _visible_state(st, with_record)
        expected = old if step in ("in_block", "staged", "version_written") else new
        assert state == expected, f"killed at {step}: {state}"
        # The next commit of the partition removes everything the killed run left behind.
        removed = st.clean_orphans("c/images/00000")
        if step in ("in_block", "staged", "version_written"):
            assert removed, f"killed at {step}: nothing to clean?"
        names = sorted(p.name for p in st.path("c/images/00000").iterdir())
        live = st.live_version("c/images/00000")
        assert names == sorted([live] + ([] if with_record else [POINTER_NAME])), f"{step}: {names}"
        assert _visible_state(st, with_record) == expected
        assert not [p for p in st.path("c/images").iterdir() if p.name.startswith(".")]


def test_a_legacy_plain_directory_is_read_and_then_replaced(tmp_path: Path):
    st = LocalStorage(tmp_path)
    st.path("c/images/00000").mkdir(parents=True)
    (st.path("c/images/00000") / "00000.tar").write_bytes(b"legacy")
    assert st.live_version("c/images/00000") == ""
    assert (st.local_dir("c/images/00000") / "00000.tar").read_bytes() == b"legacy"
    with st.staging_dir("c/images/00000") as d:
        (d / "00000.tar").write_bytes(b"new")
    assert (st.local_dir("c/images/00000") / "00000.tar").read_bytes() == b"new"
    assert not (st.path("c/images/00000") / "00000.tar").exists()


def test_resolve_follows_pointers_inside_paths(tmp_path: Path):
    st = LocalStorage(tmp_path)
    with st.staging_dir("sample-crawl") as d:
        (d / "warc").mkdir()
        (d / "warc" / "a.warc.gz").write_bytes(b"w")
    live = st.live_version("sample-crawl")
    assert st.resolve("sample-crawl/warc") == f"sample-crawl/{live}/warc"
    assert st.list(st.resolve("sample-crawl/warc")) == [f"sample-crawl/{live}/warc/a.warc.gz"]
    assert json.loads(st.read_bytes(f"sample-crawl/{POINTER_NAME}"))["files"] == [["warc/a.warc.gz", 1]]


def test_partition_keys():
    assert split_partition_key("CC-MAIN-2024-22/00042") == ("CC-MAIN-2024-22", "00042")
    p = ShardPaths.from_partition_key("CC-MAIN-2024-22/00042")
    assert p.pairs == "CC-MAIN-2024-22/pairs/00042.parquet"
    assert p.downloads == "CC-MAIN-2024-22/images/00042.parquet"
    assert make_partition_key("SAMPLE-CRAWL", "00000") == "SAMPLE-CRAWL/00000"


BAD_KEYS = [
    "00042", "", "/", "a/", "/00000", "CC/..", "CC/.", "../00000", "./00000", "../..", "CC//00000",
    "CC/00000/", "CC/00/000", "CC/0a", "CC/-1", "CC/+1", "CC/1e3", "CC/ 00001", "CC/00001 ", "CC/00001\n",
    "CC/00001\x00", "CC/٠١", "CC/１", "CC/" + "1" * 13, ".hidden/00000", "-x/00000", "_x/00000",
    "a b/00000", "a\\b/00000", "CC-MAIN\n/00000", "ü/00000", "C" * 65 + "/00000", "CC/0x1",
    "CC\\..\\x/00000", "%2e%2e/00000", "CC/%30", "~/00000", "CC:MAIN/00000", "*/00000", "CC/*",
    "CC/?", "CC/[0]",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_partition_keys_are_refused_where_read(key: str):
    with pytest.raises(ValueError, match="is not '<crawl>/<shard>'"):
        split_partition_key(key)
    with pytest.raises(ValueError):
        ShardPaths.from_partition_key(key)


@pytest.mark.parametrize("crawl, shard", [("..", "00000"), (".", "00000"), ("CC", ".."), ("CC", "."),
                                          ("CC", "0/1"), ("C/C", "00000"), ("CC", ""), ("", "00000")])
def test_bad_key_parts_are_refused_where_made(crawl: str, shard: str):
    with pytest.raises(ValueError):
        make_partition_key(crawl, shard)
    with pytest.raises(ValueError):
        ShardPaths(crawl, shard)


def test_make_shards_refuses_dot_crawls():
    for crawl in ("..", ".", "a/b", ""):
        with pytest.raises(ValueError, match="crawl name"):
            make_shards(crawl, ["x.warc.gz"], 1)


_HOLDS_COMMIT = r"""
import sys, time
from laion_assets.core.storage.local import LocalStorage
with LocalStorage(sys.argv[1]).staging_dir("c/images/00000") as d:
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_second_commit_of_the_same_directory_fails_until_the_first_dies(tmp_path: Path):
    st = LocalStorage(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDS_COMMIT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        with pytest.raises(RuntimeError, match="being committed by another process"):
            with st.staging_dir("c/images/00000"):
                pass
        with st.staging_dir("c/images/00001") as d:  # other partitions are not held up
            (d / "a").write_bytes(b"1")
    finally:
        proc.kill()
        proc.wait()
    with st.staging_dir("c/images/00000") as d:  # SIGKILL released the lock
        (d / "a").write_bytes(b"2")
    assert (st.local_dir("c/images/00000") / "a").read_bytes() == b"2"


def test_write_once_dir_keeps_the_first_complete_copy(tmp_path: Path):
    st = LocalStorage(tmp_path)
    with st.write_once_dir("releases/r-1") as d:
        (d / "part-00000.parquet").write_bytes(b"first")
    with st.write_once_dir("releases/r-1") as d:
        (d / "part-00000.parquet").write_bytes(b"second")
    assert st.read_bytes("releases/r-1/part-00000.parquet") == b"first"
    with pytest.raises(RuntimeError):
        with st.write_once_dir("releases/r-2") as d:
            (d / "part-00000.parquet").write_bytes(b"half")
            raise RuntimeError("crash")
    assert not st.exists("releases/r-2")
    assert sorted(p.name for p in st.path("releases").iterdir()) == ["r-1"]
