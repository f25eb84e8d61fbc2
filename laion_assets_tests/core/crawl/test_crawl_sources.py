"""Common Crawl as input: warc.paths.gz on a bucket laid out like `commoncrawl`, read anonymously,
WARC files streamed from S3 (moto's server) and over HTTP, provenance = the crawl's own path."""

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from laion_assets.core.crawl.manifest import list_source, make_shards, manifest_table, open_uri, shard_files
from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.storage.local import LocalStorage
from laion_assets.testing.commoncrawl import put_cc_layout, source_warcs, write_cc_layout
from laion_assets.testing.s3 import moto_s3

CRAWL = "CC-MAIN-2099-01"


@pytest.fixture(scope="module")
def cc_bucket():
    with moto_s3() as s3:
        s3.create_bucket("commoncrawl")
        warcs = source_warcs(limit=4)
        objects = put_cc_layout(s3.client(), "commoncrawl", CRAWL, warcs)
        anonymous = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1",
                                 config=Config(signature_version=UNSIGNED))
        yield anonymous, objects, warcs


def _extract(files, client):
    return extract_shard([f.path for f in files], crawl=CRAWL, config=ExtractConfig(max_bad_record_ratio=1.0),
                         open_fn=lambda p: open_uri({f.path: f.uri for f in files}[p], client))


def test_paths_listing_on_s3_anonymous_streams_and_keeps_crawl_paths(cc_bucket):
    client, objects, warcs = cc_bucket
    files = list_source(f"s3://commoncrawl/crawl-data/{CRAWL}/warc.paths.gz", client)
    assert [f.path for f in files] == sorted(k for k in objects if k.endswith(".warc.gz"))
    assert all(f.uri == f"s3://commoncrawl/{f.path}" for f in files)
    manifest = manifest_table(make_shards(CRAWL, files, 2))
    assert manifest.column("warc_path").to_pylist()[0].startswith(f"crawl-data/{CRAWL}/segments/")
    assert shard_files(manifest, "00001") == files[2:4]

    result = _extract(files, client)
    assert result.table.num_rows > 0
    assert set(result.table.column("warc_path").to_pylist()) <= {f.path for f in files}
    # the same bytes read from local copies give the same pairs: streaming loses nothing
    local = _extract([type(f)(f.path, str(w)) for f, w in zip(files, warcs)], None)
    cols = ["url", "text", "warc_path", "warc_offset"]
    assert result.table.select(cols).to_pylist() == local.table.select(cols).to_pylist()


def test_range_reads_from_s3(cc_bucket):
    client, objects, _ = cc_bucket
    key = sorted(k for k in objects if k.endswith(".warc.gz"))[0]
    with open_uri(f"s3://commoncrawl/{key}", client, offset=10, length=100) as f:
        assert f.read() == objects[key][10:110]


def test_local_range_reads_are_the_storage_ones(tmp_path, monkeypatch):
    """A local WARC is read by `LocalStorage.open_read` (one range read for both): absolute paths,
    paths relative to the working directory, whole files, ranges, ranges past the end."""
    data = bytes(range(256)) * 40
    (tmp_path / "a.warc.gz").write_bytes(data)
    storage = LocalStorage(tmp_path)
    monkeypatch.chdir(tmp_path)
    for offset, length in [(0, None), (10, 100), (5000, None), (len(data) - 3, 10), (7, 0)]:
        want = data[offset:] if length is None else data[offset : offset + length]
        for uri in (str(tmp_path / "a.warc.gz"), "a.warc.gz"):
            with open_uri(uri, offset=offset, length=length) as f:
                assert f.read() == want, (uri, offset, length)
        with storage.open_read("a.warc.gz", offset, length) as f:
            assert f.read() == want
    with pytest.raises(FileNotFoundError):
        open_uri(str(tmp_path / "missing.warc.gz"))


def test_paths_listing_over_http(tmp_path: Path):
    warcs = source_warcs(limit=2)
    objects = write_cc_layout(tmp_path, CRAWL, warcs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        files = list_source(f"{base}crawl-data/{CRAWL}/warc.paths.gz")
        assert [f.uri for f in files] == [base + k for k in sorted(objects) if k.endswith(".warc.gz")]
        assert _extract(files, None).table.num_rows > 0
    finally:
        server.shutdown()
        server.server_close()


def test_local_source_provenance_is_not_an_absolute_path(tmp_path: Path):
    (tmp_path / "a.warc.gz").write_bytes(b"x")
    files = list_source(str(tmp_path), label="my-crawl/warc")
    assert [(f.path, f.uri) for f in files] == [("my-crawl/warc/a.warc.gz", str((tmp_path / "a.warc.gz").resolve()))]
    write_cc_layout(tmp_path / "mirror", CRAWL, source_warcs(limit=1))
    listed = list_source(str(tmp_path / "mirror" / "crawl-data" / CRAWL / "warc.paths.gz"))
    assert listed[0].path.startswith("crawl-data/") and Path(listed[0].uri).is_file()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
