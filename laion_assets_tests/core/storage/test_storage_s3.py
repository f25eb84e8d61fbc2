"""S3Storage against moto's real S3 API server on 127.0.0.1: the same guarantees as a local root."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from laion_assets.core.storage.base import POINTER_NAME, Storage
from laion_assets.core.storage.s3 import S3Credentials, S3Storage
from laion_assets.testing.s3 import TEST_CREDENTIALS, moto_s3

BUCKET = "laion-storage-test"


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as server:
        server.create_bucket(BUCKET)
        yield server


def _storage(s3, prefix: str, tmp_path: Path, **kw) -> S3Storage:
    creds = S3Credentials(endpoint_url=s3.endpoint_url, region="us-east-1",
                          access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    return S3Storage(f"s3://{BUCKET}/{prefix}", s3.client(), credentials=creds, cache_dir=tmp_path / "cache", **kw)


def _keys(s3, prefix: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_files_roundtrip_list_and_ranges(s3, tmp_path: Path):
    st = _storage(s3, "files", tmp_path)
    assert isinstance(st, Storage)
    st.write_parquet(pa.table({"x": [1, 2]}), "a/b.parquet")
    st.write_parquet(pa.table({"x": [3]}), "a/b.parquet")
    st.write_bytes(b"0123456789", "a/c.bin")
    assert st.read_parquet("a/b.parquet").column("x").to_pylist() == [3]
    assert st.list("a", ".parquet") == ["a/b.parquet"]
    assert st.exists("a/b.parquet") and st.exists("a") and not st.exists("a/nope")
    with st.open_read("a/c.bin", offset=3, length=4) as f:
        assert f.read() == b"3456"
    with st.open_read(st.uri("a/c.bin")) as f:
        assert f.read() == b"0123456789"
    for bad in ("../x", "/abs", "a/../../x", ""):
        with pytest.raises(ValueError, match="escapes"):
            st.key(bad)
    assert TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in repr(st) + repr(st.credentials)


def test_directory_commit_with_record_and_pointer(s3, tmp_path: Path):
    st = _storage(s3, "commit", tmp_path)
    with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
        (d / "00000.tar").write_bytes(b"old")
        st.write_parquet(pa.table({"gen": ["old"]}), "c/images/00000.parquet")
    with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
        (d / "00000.tar").write_bytes(b"new")
        (d / "sub").mkdir()
        (d / "sub" / "x.npy").write_bytes(b"npy")
        st.write_parquet(pa.table({"gen": ["new"]}), "c/images/00000.parquet")
    live = st.live_version("c/images/00000")
    assert _keys(s3, "commit/c/images/00000/") == [f"commit/c/images/00000/{live}/00000.tar",
                                                   f"commit/c/images/00000/{live}/sub/x.npy"]
    local = st.local_dir("c/images/00000")
    assert (local / "00000.tar").read_bytes() == b"new" and (local / "sub" / "x.npy").read_bytes() == b"npy"
    with st.staging_dir("sample") as d:
        (d / "warc").mkdir()
        (d / "warc" / "a.warc.gz").write_bytes(b"w")
    assert st.resolve("sample/warc") == f"sample/{st.live_version('sample')}/warc"
    assert st.list(st.resolve("sample/warc")) == [f"sample/{st.live_version('sample')}/warc/a.warc.gz"]
    assert st.exists(f"sample/{POINTER_NAME}")


def test_duckdb_reads_shard_parquet_on_s3(s3, tmp_path: Path):
    st = _storage(s3, "duck", tmp_path)
    for shard in ("00000", "00001"):
        st.write_parquet(pa.table({"shard": [shard] * 3}), f"C/filtered/{shard}.parquet")
    with duckdb.connect() as con:
        st.register_duckdb(con)
        rows = con.sql(f"SELECT shard, count(*) FROM read_parquet('{st.root_uri}/*/filtered/*.parquet') "
                       "GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("00000", 3), ("00001", 3)]


_KILLED = r"""
import os, signal, sys
import pyarrow as pa
from laion_assets.core.storage.s3 import S3Credentials, S3Storage
from laion_assets.testing.s3 import TEST_CREDENTIALS
import boto3
endpoint, uri, cache, kill_at = sys.argv[1:5]
count = {"object_uploaded": 0}
def hook(step):
    if step == "object_uploaded":
        count[step] += 1
        step = f"object_uploaded_{count[step]}"
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
st = S3Storage(uri, client, cache_dir=cache, on_commit_step=hook)
with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
    (d / "00000.tar").write_bytes(b"new-0")
    (d / "00001.tar").write_bytes(b"new-1")
    st.write_parquet(pa.table({"gen": ["new", "new"]}), "c/images/00000.parquet")
    hook("in_block")
"""

S3_STEPS = ["in_block", "staged", "object_uploaded_1", "version_written", "record_written", "superseded_removed"]


def test_sigkill_at_every_s3_commit_step_leaves_old_or_new(s3, tmp_path: Path):
    for step in S3_STEPS:
        prefix = f"kill-{step}"
        st = _storage(s3, prefix, tmp_path / step)
        with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
            (d / "00000.tar").write_bytes(b"old-0")
            st.write_parquet(pa.table({"gen": ["old"]}), "c/images/00000.parquet")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.run([sys.executable, "-c", _KILLED, s3.endpoint_url, st.root_uri,
                               str(tmp_path / step / "killed-cache"), step], capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode == -9, proc.stderr
        local = st.local_dir("c/images/00000")
        files = {p.name: p.read_bytes() for p in sorted(local.iterdir()) if not p.name.startswith(".")}
        gens = set(st.read_parquet("c/images/00000.parquet").column("gen").to_pylist())
        if step in ("in_block", "staged", "object_uploaded_1", "version_written"):
            assert (files, gens) == ({"00000.tar": b"old-0"}, {"old"}), step
        else:
            assert (files, gens) == ({"00000.tar": b"new-0", "00001.tar": b"new-1"}, {"new"}), step
        st.clean_orphans("c/images/00000")
        live = st.live_version("c/images/00000")
        assert {k.split("/")[4] for k in _keys(s3, f"{prefix}/c/images/00000/")} == {live}, step


def test_cleanup_aborts_multipart_uploads_and_unnamed_versions(s3, tmp_path: Path):
    st = _storage(s3, "orphans", tmp_path)
    with st.staging_dir("c/scores/00000") as d:
        (d / "img_emb.npy").write_bytes(b"live")
    client = s3.client()
    up = client.create_multipart_upload(Bucket=BUCKET, Key="orphans/c/scores/00000/v-0000000000000000/img_emb.npy")
    client.put_object(Bucket=BUCKET, Key="orphans/c/scores/00000/v-1111111111111111/img_emb.npy", Body=b"half")
    removed = st.clean_orphans("c/scores/00000")
    assert "c/scores/00000/v-1111111111111111/img_emb.npy" in removed
    assert not client.list_multipart_uploads(Bucket=BUCKET, Prefix="orphans/").get("Uploads")
    live = st.live_version("c/scores/00000")
    assert _keys(s3, "orphans/c/scores/00000/") == [f"orphans/c/scores/00000/{POINTER_NAME}",
                                                    f"orphans/c/scores/00000/{live}/img_emb.npy"]
    assert up["UploadId"]


def test_commit_record_is_read_from_the_parquet_footer_only(s3, tmp_path: Path):
    from laion_assets.core.storage.s3 import S3RangeFile

    st = _storage(s3, "footer", tmp_path)
    big = pa.table({"key": [os.urandom(24).hex() for _ in range(50_000)]})
    with st.staging_dir("c/images/00000", record="c/images/00000.parquet") as d:
        (d / "00000.tar").write_bytes(b"t")
        st.write_parquet(big, "c/images/00000.parquet")
    reads = []

    class Counting(S3RangeFile):
        def readinto(self, b):
            n = super().readinto(b)
            reads.append(n)
            return n

    import pyarrow.parquet as pq

    with Counting(st.client, BUCKET, st.key("c/images/00000.parquet")) as f:
        meta = pq.read_schema(f).metadata
        size = f.seek(0, 2)
    assert b"laion_assets.commit" in meta
    assert sum(reads) < size / 10, (sum(reads), size)
    assert st.live_version("c/images/00000").startswith("v-")


def test_write_once_dir_on_s3_completes_an_interrupted_copy(s3, tmp_path: Path):
    st = _storage(s3, "once", tmp_path)
    s3.client().put_object(Bucket=BUCKET, Key="once/releases/r-1/part-00000.parquet", Body=b"half")  # killed run
    with st.write_once_dir("releases/r-1") as d:
        (d / "part-00000.parquet").write_bytes(b"full")
        (d / "README.md").write_bytes(b"card")
    assert st.read_bytes("releases/r-1/part-00000.parquet") == b"full"
    with st.write_once_dir("releases/r-1") as d:
        (d / "part-00000.parquet").write_bytes(b"other")
    assert st.read_bytes("releases/r-1/part-00000.parquet") == b"full"
    assert st.list("releases/r-1") == ["releases/r-1/README.md", "releases/r-1/_COMPLETE", "releases/r-1/part-00000.parquet"]
