"""Image hashes of the original bytes (md5, sha1, sha256) from the downloader's status row, through
the tar's `.json`, into `filtered_pairs`: the columns an `image_*` removal entry is matched against.
Real HTTP server on 127.0.0.1, real tars and parquet; old status files without `sha1` still read."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.download import DownloadConfig, download_shard
from laion_assets.core.filter.shard import filter_shard
from laion_assets.core.schemas import PAIR_SCHEMA, SCORE_SCHEMA
from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA
from laion_assets.testing.http_server import TestServer, make_jpeg, send, static

FAST = dict(allow_private_hosts=("127.0.0.1",), connect_timeout_s=2.0, read_timeout_s=2.0,
            total_timeout_s=5.0, retries=0, shard_timeout_s=40.0, image_size=64,
            respect_robots_txt=False, respect_tdmrep=False)


def _encoded(fmt: str, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(make_jpeg(320, 240, seed=seed))).save(buf, fmt)
    return buf.getvalue()


SERVED = {"/a.jpg": make_jpeg(640, 480, seed=11), "/b.png": _encoded("PNG", 12), "/c.webp": _encoded("WEBP", 13)}
TYPES = {"/a.jpg": "image/jpeg", "/b.png": "image/png", "/c.webp": "image/webp"}


def _pairs(urls: list[str]) -> pa.Table:
    n = len(urls)
    return pa.table({"key": [f"{i:09d}" for i in range(n)], "url": urls,
                     "text": [f"caption {i}" for i in range(n)], "page_url": ["http://example.com/"] * n,
                     "optout_page": [False] * n, "optout_reasons": pa.array([None] * n, pa.string())})


def _sample_json(out: Path, row: dict) -> dict:
    with tarfile.open(out / row["tar_path"]) as tar:
        return json.load(tar.extractfile(row["tar_member"].rpartition(".")[0] + ".json"))


@pytest.mark.parametrize("processes", [1, 2])
def test_status_row_and_sample_json_hash_the_served_bytes(tmp_path: Path, processes: int):
    """Decoded in this process, and in a spawned downloader process (rows pickled to the parent)."""
    paths = sorted(SERVED)
    with TestServer({p: static(SERVED[p], TYPES[p]) for p in paths}) as srv:
        res = download_shard(_pairs([srv.url(p) for p in paths]), tmp_path, config=DownloadConfig(
            **FAST, processes=processes, min_rows_per_process=1))
    rows = res.status.to_pylist()
    assert res.status.schema == DOWNLOAD_SCHEMA and [r["status"] for r in rows] == ["ok"] * 3
    for path, row in zip(paths, rows):
        body = SERVED[path]
        expected = {"md5": hashlib.md5(body).hexdigest(), "sha1": hashlib.sha1(body).hexdigest(),
                    "sha256": hashlib.sha256(body).hexdigest()}
        assert {k: row[k] for k in expected} == expected, path
        meta = _sample_json(tmp_path, row)
        assert {k: meta[k] for k in expected} == expected, path
        with tarfile.open(tmp_path / row["tar_path"]) as tar:
            stored = tar.extractfile(row["tar_member"]).read()
        assert hashlib.sha1(stored).hexdigest() != expected["sha1"]  # the original, not the re-encoded JPEG


def test_rerun_over_a_status_written_before_sha1(tmp_path: Path):
    """A status parquet without `sha1` (an older downloader) is read: its ok rows are carried over
    with sha1 null (only the re-encoded image is stored), retried rows get theirs."""
    state = {"up": False}

    def flaky(h):
        if state["up"]:
            send(h, SERVED["/a.jpg"])
        else:
            send(h, b"down", "text/plain", 500)

    with TestServer({"/b.png": static(SERVED["/b.png"], "image/png"), "/flaky.jpg": flaky}) as srv:
        pairs = _pairs([srv.url("/b.png"), srv.url("/flaky.jpg")])
        cfg = DownloadConfig(**FAST, processes=1)
        first = download_shard(pairs, tmp_path / "run1", config=cfg)
        old = first.status.drop_columns(["sha1"])
        pq.write_table(old, tmp_path / "old.parquet")
        state["up"] = True
        second = download_shard(pairs, tmp_path / "run2", config=cfg,
                                previous_status=pq.read_table(tmp_path / "old.parquet"),
                                previous_dir=tmp_path / "run1")
    carried, fetched = second.status.to_pylist()
    assert second.stats["carried_over"] == 1 and second.stats["fetched_rows"] == 1
    assert carried["status"] == fetched["status"] == "ok"
    assert carried["sha1"] is None and carried["sha256"] == hashlib.sha256(SERVED["/b.png"]).hexdigest()
    assert fetched["sha1"] == hashlib.sha1(SERVED["/a.jpg"]).hexdigest()
    assert _sample_json(tmp_path / "run2", carried)["sha1"] is None


def _filter_inputs(tmp_path: Path, downloads: pa.Table) -> dict[str, Path]:
    n = downloads.num_rows
    keys = downloads.column("key").to_pylist()
    pairs = pa.Table.from_pylist([
        {"key": k, "url": f"http://i.example/{k}.jpg", "text": f"caption {k}", "page_url": "http://p.example/",
         "crawl": "C", "warc_path": "crawl-data/C/warc/a.warc.gz", "warc_offset": i, "optout_page": False}
        for i, k in enumerate(keys)], schema=PAIR_SCHEMA)
    scores = pa.Table.from_pylist([
        {"key": k, "status": "scored", "similarity": 0.9, "threshold": 0.28, "model_id": "m", "weights_id": "w",
         "punsafe": 0.1, "nsfw": "UNLIKELY", "embedding_row": i} for i, k in enumerate(keys)], schema=SCORE_SCHEMA)
    paths = {name: tmp_path / f"{name}.parquet" for name in ("pairs", "downloads", "scores")}
    for name, t in (("pairs", pairs), ("downloads", downloads), ("scores", scores)):
        pq.write_table(t, paths[name])
    assert n == pairs.num_rows
    return paths


def test_filtered_pairs_carry_sha1_and_read_old_status_files(tmp_path: Path):
    digests = [hashlib.sha1(body).hexdigest() for body in SERVED.values()]
    downloads = pa.Table.from_pylist([
        {"key": f"{i:09d}", "url": f"http://i.example/{i:09d}.jpg", "status": "ok", "width": 32, "height": 32,
         "sha256": hashlib.sha256(body).hexdigest(), "md5": hashlib.md5(body).hexdigest(), "sha1": digest}
        for i, (body, digest) in enumerate(zip(SERVED.values(), digests))], schema=DOWNLOAD_SCHEMA)
    (tmp_path / "new").mkdir()
    p = _filter_inputs(tmp_path / "new", downloads)
    kept = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000").table
    assert kept.column("sha1").to_pylist() == digests

    (tmp_path / "old").mkdir()  # a shard downloaded before sha1 existed: the column is NULL, not an error
    p = _filter_inputs(tmp_path / "old", downloads.drop_columns(["sha1"]))
    kept = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000").table
    assert kept.num_rows == 3 and kept.column("sha1").null_count == 3
    assert kept.column("md5").to_pylist() == downloads.column("md5").to_pylist()
