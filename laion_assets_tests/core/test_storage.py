from pathlib import Path

import pyarrow as pa
import pytest

from laion_assets.core.storage import LocalStorage, ShardPaths, split_partition_key


def test_staging_dir_replaces_whole_or_not_at_all(tmp_path: Path):
    st = LocalStorage(tmp_path)
    with st.staging_dir("c/images/00000") as d:
        (d / "a.tar").write_bytes(b"1")
    with st.staging_dir("c/images/00000") as d:
        (d / "b.tar").write_bytes(b"2")
    assert sorted(p.name for p in st.path("c/images/00000").iterdir()) == ["b.tar"]
    with pytest.raises(RuntimeError):
        with st.staging_dir("c/images/00000") as d:
            (d / "half.tar").write_bytes(b"3")
            raise RuntimeError("crash")
    assert sorted(p.name for p in st.path("c/images/00000").iterdir()) == ["b.tar"]
    assert [p.name for p in st.path("c/images").iterdir()] == ["00000"]


def test_parquet_roundtrip_and_no_escape(tmp_path: Path):
    st = LocalStorage(tmp_path)
    t = pa.table({"x": [1, 2]})
    st.write_parquet(t, "a/b.parquet")
    st.write_parquet(pa.table({"x": [3]}), "a/b.parquet")
    assert st.read_parquet("a/b.parquet").column("x").to_pylist() == [3]
    assert [p.name for p in st.path("a").iterdir()] == ["b.parquet"]
    with pytest.raises(ValueError, match="escapes"):
        st.path("../outside")


def test_partition_keys():
    assert split_partition_key("CC-MAIN-2024-22/00042") == ("CC-MAIN-2024-22", "00042")
    p = ShardPaths.from_partition_key("CC-MAIN-2024-22/00042")
    assert p.pairs == "CC-MAIN-2024-22/pairs/00042.parquet"
    assert p.downloads == "CC-MAIN-2024-22/images/00042.parquet"
    with pytest.raises(ValueError, match="not '<crawl>/<shard>'"):
        split_partition_key("00042")
