"""Purge on a real shard built by the real stages (a real Dagster instance, the test HTTP server,
the tiny CLIP model), on a local root and on moto's S3 server: the removed samples' tar members,
score rows and embeddings are gone, everything else is byte-for-byte what it was, the status rows
say `skipped/removed`, a re-run fetches none of the removed URLs, and a second purge changes nothing."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pytest

from laion_assets.core.release.purge import purge_released_removals, purge_removed, removed_in_warehouse
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, entry_host
from laion_assets.core.schemas.pairs import PAIR_SCHEMA
from laion_assets.core.storage import open_storage
from laion_assets.core.storage.layout import REMOVAL_ENTRIES, ShardPaths
from laion_assets.definitions import build_definitions
from laion_assets.runner import failed_checks
from laion_assets.settings import load_settings
from laion_assets.testing.http_server import TestServer, make_jpeg, static
from laion_assets.core.storage.s3 import S3Credentials
from laion_assets.testing.s3 import TEST_CREDENTIALS, moto_s3

CRAWL, N = "CC-TEST", 8
REMOVED_KEYS = {"000000001", "000000004"}
SHARD_OPS = ["image_downloads", "clip_scores", "filtered_pairs"]
KEEP_ALL = {"ops": {"filtered_pairs": {"config": {"min_similarity": -1.0}}}}


def _pairs(urls: list[str]) -> pa.Table:
    n = len(urls)
    cols = {f.name: pa.nulls(n, f.type) for f in PAIR_SCHEMA}
    cols.update(key=pa.array([f"{i:09d}" for i in range(n)]), url=pa.array(urls),
                text=pa.array([f"a photo number {i}" for i in range(n)]),
                page_url=pa.array(["http://example.com/page.html"] * n), crawl=pa.array([CRAWL] * n),
                warc_path=pa.array(["crawl-data/x.warc.gz"] * n), warc_offset=pa.array(range(n), pa.int64()),
                caption_language=pa.array(["en"] * n), optout_page=pa.array([False] * n))
    return pa.table(cols, schema=PAIR_SCHEMA)


def _run(defs, instance, shard: str, ops: list[str]) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("shards", [f"{CRAWL}/{shard}"])
    result = defs.resolve_job_def("shard_job").execute_in_process(
        instance=instance, partition_key=f"{CRAWL}/{shard}", op_selection=ops, raise_on_error=False,
        run_config=KEEP_ALL if "filtered_pairs" in ops else {})
    assert result.success
    assert failed_checks(instance, [result.run_id]) == []
    return result


def _members(st, paths: ShardPaths) -> dict[str, bytes]:
    out = {}
    for tar in sorted(st.local_dir(paths.images_dir).glob("*.tar")):
        with tarfile.open(tar) as t:
            out.update({f"{tar.name}/{m.name}": t.extractfile(m).read() for m in t if m.isfile()})
    return out


def _embeddings(st, paths: ShardPaths) -> dict[str, tuple[bytes, bytes]]:
    scores = st.read_parquet(paths.scores)
    d = st.local_dir(paths.embeddings_dir)
    img, txt = np.load(d / "img_emb.npy"), np.load(d / "text_emb.npy")
    assert img.shape[0] == txt.shape[0] == scores.num_rows
    return {k: (img[r].tobytes(), txt[r].tobytes())
            for k, r in zip(scores["key"].to_pylist(), scores["embedding_row"].to_pylist())}


def _everything(st, root: str) -> dict[str, str]:
    """Every stored file's sha256 (local walk or an S3 listing)."""
    client = st.client_for(root)
    if client is None:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in Path(root).rglob("*") if p.is_file() and "warehouse" not in p.name}
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = hashlib.sha256(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()).hexdigest()
    return out


@pytest.fixture(params=["local", "s3"])
def root(request, embedded_env, tmp_path: Path, monkeypatch):
    """(the root, a Storage of our own on it: the test reads and purges beside the Dagster runs)."""
    if request.param == "local":
        yield embedded_env["LAION_ASSETS_ROOT"], open_storage(embedded_env["LAION_ASSETS_ROOT"])
        return
    with moto_s3() as s3:
        s3.create_bucket("laion-purge")
        uri = "s3://laion-purge/build"
        for k, v in {**s3.env, "LAION_ASSETS_ROOT": uri, "LAION_LOCAL_CACHE": str(tmp_path / "cache")}.items():
            monkeypatch.setenv(k, v)
        creds = S3Credentials(endpoint_url=s3.endpoint_url, region="us-east-1",
                              access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        yield uri, open_storage(uri, s3=lambda: (s3.client(), creds), cache_dir=str(tmp_path / "purge-cache"))


def test_purge_removes_exactly_the_removed_samples_and_a_rerun_never_fetches_them(root, tmp_path: Path):
    root, st = root
    routes = {f"/img{i}.jpg": static(make_jpeg(400 + 8 * i, 300, seed=i)) for i in range(N)}
    routes.update({f"/blocked/{i}.jpg": static(make_jpeg(400, 300, seed=50 + i)) for i in range(2)})
    routes["/hashed.jpg"] = static(make_jpeg(400, 300, seed=60))
    defs = build_definitions(load_settings())
    paths = ShardPaths(CRAWL, "00000")
    (tmp_path / "home").mkdir()
    with TestServer(routes) as srv, dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        urls = [srv.url(f"/img{i}.jpg") for i in range(N)]
        st.write_parquet(_pairs(urls), paths.pairs)
        _run(defs, instance, "00000", SHARD_OPS)
        assert all(srv.requests_to(f"/img{i}.jpg") == 1 for i in range(N))
        status0 = st.read_parquet(paths.downloads)
        assert status0["status"].to_pylist() == ["ok"] * N
        members0, emb0 = _members(st, paths), _embeddings(st, paths)
        assert st.read_parquet(paths.filtered).num_rows == N

        removed = pa.table({"crawl": [CRAWL] * 2, "shard": ["00000"] * 2, "key": sorted(REMOVED_KEYS),
                            "sample_id": pa.array([1, 2], pa.int64()),
                            "reason": ["removal:photographer", "removal:hashlist"]})
        # through the warehouse, as after a re-derive: a DuckDB `drop_log` with dbt's columns
        wh = tmp_path / "warehouse.duckdb"
        with duckdb.connect(str(wh)) as con:
            con.register("r", removed)
            con.execute("CREATE TABLE drop_log AS SELECT crawl, shard, key, sample_id, 'x' AS url_sha256, "
                        "reason, 'release' AS stage FROM r UNION ALL SELECT 'CC-TEST', '00000', '000000002', 3, "
                        "'x', 'below_threshold', 'shard'")
        st.upload_file(wh, "warehouse.duckdb")
        assert removed_in_warehouse(st).select(["key", "reason"]).equals(removed.select(["key", "reason"]))
        counts = purge_released_removals(st)[f"{CRAWL}/00000"]
        assert counts["status_rows_marked"] == counts["samples_removed"] == 2
        assert counts["tar_members_removed"] == 6 and counts["tars_rewritten"] >= 1
        assert counts["score_rows_removed"] == counts["embedding_rows_removed"] == counts["filtered_rows_moved"] == 2
        assert counts["bytes_freed"] > 0

        # Tars: the removed samples' .jpg/.txt/.json are gone, every other member byte-identical.
        stems = {f"00000_{k}" for k in REMOVED_KEYS}
        members1 = _members(st, paths)
        assert members1 == {n: b for n, b in members0.items() if n.split("/")[1].split(".")[0] not in stems}
        assert len(members1) == 3 * (N - 2)
        # Status: one row per URL still; the removed ones skipped/removed with the reason, no image fields.
        status1 = st.read_parquet(paths.downloads)
        assert status1["key"].to_pylist() == status0["key"].to_pylist()
        by_key = {r["key"]: r for r in status1.to_pylist()}
        for k in REMOVED_KEYS:
            r = by_key[k]
            assert (r["status"], r["reason"]) == ("skipped", "removed")
            assert r["tar_member"] is r["tar_path"] is r["pdq"] is r["width"] is None
        assert by_key["000000001"]["error"] == "removal:photographer"
        kept0 = [r for r in status0.to_pylist() if r["key"] not in REMOVED_KEYS]
        assert [r for r in status1.to_pylist() if r["key"] not in REMOVED_KEYS] == kept0
        # Scores and embeddings: removed rows gone, the others' float16 vectors unchanged.
        emb1 = _embeddings(st, paths)
        assert emb1 == {k: v for k, v in emb0.items() if k not in REMOVED_KEYS}
        drops = {r["key"]: r["reason"] for r in st.read_parquet(paths.drops).to_pylist()}
        assert drops == {"000000001": "removal:photographer", "000000004": "removal:hashlist"}
        purged_filtered = st.read_parquet(paths.filtered)
        assert set(purged_filtered["key"].to_pylist()) == {f"{i:09d}" for i in range(N)} - REMOVED_KEYS

        # Idempotent: a second purge finds nothing and changes no stored byte.
        files = _everything(st, root)
        again = purge_removed(st, removed)[f"{CRAWL}/00000"]
        assert set(again.values()) == {0}
        assert _everything(st, root) == files

        # The stages re-run over the purged shard: every check passes, no removed URL is requested,
        # and filtered_pairs writes what the purge wrote.
        _run(defs, instance, "00000", SHARD_OPS)
        assert [srv.requests_to(f"/img{i}.jpg") for i in range(N)] == [1] * N
        assert st.read_parquet(paths.downloads).equals(status1)  # the removed rows carried as they are
        assert {r["key"]: r["reason"] for r in st.read_parquet(paths.drops).to_pylist()} == drops
        assert st.read_parquet(paths.filtered).select(["key", "url", "sample_id"]).equals(
            purged_filtered.select(["key", "url", "sample_id"]))
        # ... also when the run does not carry rows over (retry_failed_only=False)
        full = defs.resolve_job_def("shard_job").execute_in_process(
            instance=instance, partition_key=f"{CRAWL}/00000", op_selection=["image_downloads"],
            run_config={"ops": {"image_downloads": {"config": {"retry_failed_only": False}}}})
        assert full.success and failed_checks(instance, [full.run_id]) == []
        assert [srv.requests_to(f"/img{i}.jpg") for i in range(N)] == [1 if f"{i:09d}" in REMOVED_KEYS else 2
                                                                      for i in range(N)]

        # A new shard: URLs a removal entry names (prefix, URL hash) are never requested.
        hashed = srv.url("/hashed.jpg")
        st.write_parquet(pa.table({
            "kind": ["url_prefix", "url_sha256", "domain"],
            "value": [srv.url("/blocked/"), hashlib.sha256(hashed.encode()).hexdigest(), "never.example"],
            "source": ["lawyer", "hashlist", "lawyer"], "listed_on": [None] * 3,
            "host": [entry_host("url_prefix", srv.url("/blocked/")), None, "never.example"]}, schema=REMOVAL_SCHEMA),
            REMOVAL_ENTRIES)
        new = ShardPaths(CRAWL, "00001")
        st.write_parquet(_pairs([srv.url("/blocked/0.jpg"), urls[0], hashed, srv.url("/blocked/1.jpg")]), new.pairs)
        _run(defs, instance, "00001", ["image_downloads"])
        assert srv.requests_to("/blocked/0.jpg") == srv.requests_to("/blocked/1.jpg") == srv.requests_to("/hashed.jpg") == 0
        rows = st.read_parquet(new.downloads).to_pylist()
        assert [(r["status"], r["reason"], r["error"]) for r in rows] == [
            ("skipped", "removed", "removal:lawyer"), ("ok", None, None),
            ("skipped", "removed", "removal:hashlist"), ("skipped", "removed", "removal:lawyer")]
        assert len(_members(st, new)) == 3


def test_purge_rejects_a_reason_that_is_not_a_removal(tmp_path: Path):
    st = open_storage(str(tmp_path / "root"))
    bad = pa.table({"crawl": [CRAWL], "shard": ["00000"], "key": ["000000001"], "sample_id": [1],
                    "reason": ["below_threshold"]})
    with pytest.raises(ValueError, match="not a removal reason"):
        purge_removed(st, bad)
    with pytest.raises(ValueError, match="missing"):
        purge_removed(st, bad.drop_columns(["shard"]))
    unknown = purge_removed(st, bad.set_column(4, "reason", pa.array(["removal:x"])))
    assert unknown == {f"{CRAWL}/00000": {**{k: 0 for k in unknown[f"{CRAWL}/00000"]}, "keys_not_found": 1}}


def test_rewrite_tar_copies_kept_members_raw_and_drops_empty_tars(tmp_path: Path):
    from laion_assets.core.download.writer import TarWriter
    from laion_assets.core.release.purge import rewrite_tar

    w = TarWriter(tmp_path, images_per_tar=100)
    for i in range(5):  # PAX records too: non-ASCII captions and metadata
        w.write(f"s_{i:09d}", make_jpeg(40, 30, seed=i), "légende " * i, {"k": "ü" * i})
    w.close()
    src = tmp_path / "00000.tar"
    dropped, stems = rewrite_tar(src, tmp_path / "out.tar", {"s_000000001", "s_000000003", "s_9"})
    assert (dropped, stems) == (6, {"s_000000001", "s_000000003"})
    # byte for byte what tarfile itself writes for the kept members (headers, PAX, padding, end)
    ref = io.BytesIO()
    with tarfile.open(src) as tin, tarfile.open(fileobj=ref, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            if m.name.split(".")[0] not in stems:
                tout.addfile(m, tin.extractfile(m))
    assert (tmp_path / "out.tar").read_bytes() == ref.getvalue()
    every = {f"s_{i:09d}" for i in range(5)}
    assert rewrite_tar(src, tmp_path / "empty.tar", every) == (15, every)
    assert not (tmp_path / "empty.tar").exists()


def test_header_scan_agrees_with_tarfile_on_pax_names(tmp_path: Path):
    from laion_assets.core.release.purge import _spans_fast, rewrite_tar

    path = tmp_path / "pax.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name in ["a" * 150 + ".jpg", "ümlaut_1.txt", "plain_2.json", "dir_3"]:
            info = tarfile.TarInfo(name)
            if name.startswith("dir"):
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = 700
                t.addfile(info, io.BytesIO(b"x" * 700))
    with tarfile.open(path) as t:
        expected = [(m.name, m.offset, m.offset_data + (-(-m.size // 512) * 512)) for m in t]
    assert _spans_fast(path) == expected
    assert rewrite_tar(path, tmp_path / "out.tar", {"ümlaut_1"}) == (1, {"ümlaut_1"})
    with tarfile.open(tmp_path / "out.tar") as t:
        assert [m.name for m in t] == ["a" * 150 + ".jpg", "plain_2.json", "dir_3"]
