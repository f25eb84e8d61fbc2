"""Removal sources: every format and kind, bad entries kept aside with a reason, object storage
(moto's S3 server on loopback), and the match SQL the release's blocking check uses."""

import hashlib
import io
from pathlib import Path

import boto3
import duckdb
import numpy as np
import pdqhash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from laion_assets.core.removal.entries import (
    KINDS,
    REMOVAL_SCHEMA,
    RemovalSource,
    entry_counts,
    load_removal_list,
    matches_sql,
    normalize,
    pdq_distance,
    pdq_distance_sql,
    pdq_matches_sql,
    pdq_hex,
    sources_in_dir,
)
from laion_assets.core.sample.synthetic import render_image
from laion_assets.core.lib.validation import ConfigError
from laion_assets_tests.conftest import free_port

MD5 = hashlib.md5(b"http://x/1.jpg").hexdigest()


def test_normalize_each_kind():
    assert normalize("url_md5", MD5.upper()) == MD5
    assert normalize("domain", "HTTPS://*.Example.COM/path") == "example.com"
    assert normalize("url_prefix", "http://a.example/private/") == "http://a.example/private/"
    for kind, bad in [("url_md5", "abc"), ("image_sha256", "zz" * 32), ("pdq", "0" * 63), ("url", "ftp://x"),
                      ("domain", "exa mple.com"), ("url", "  ")]:
        with pytest.raises(ValueError):
            normalize(kind, bad)


def test_load_csv_parquet_and_lines_keeping_bad_entries_aside(tmp_path: Path):
    (tmp_path / "iwf.csv").write_text(
        f"kind,value,listed_on\nurl_md5,{MD5},2026-01-02\nimage_md5,nothex,2026-01-02\nbogus,{MD5},\n"
        f"domain,Blocked.Example,2026-13-40\nurl_md5,{MD5.upper()},2026-01-03\n")
    pq.write_table(pa.table({"value": ["ab" * 32, "cd" * 32]}), tmp_path / "sio.parquet")
    (tmp_path / "photographer.url.txt").write_text("# one URL per line\nhttp://x/1.jpg\n\nnot a url\n")
    sources = [
        RemovalSource("iwf", str(tmp_path / "iwf.csv")),
        RemovalSource("sio", str(tmp_path / "sio.parquet"), kind="image_sha256", listed_on="2024-08-30"),
        RemovalSource("photographer", str(tmp_path / "photographer.url.txt"), kind="url"),
    ]
    entries, rejected = load_removal_list(sources)
    assert entries.schema == REMOVAL_SCHEMA
    assert entry_counts(entries) == {"iwf": {"url_md5": 1}, "photographer": {"url": 1}, "sio": {"image_sha256": 2}}
    assert set(entries.column("listed_on").to_pylist()) == {"2026-01-02", "2024-08-30", None}
    assert sorted(zip(rejected.column("source").to_pylist(), rejected.column("line").to_pylist(),
                      rejected.column("reason").to_pylist())) == [
        ("iwf", 3, "not a md5 hex digest"), ("iwf", 4, "unknown kind"), ("iwf", 5, "listed_on is not YYYY-MM-DD"),
        ("photographer", 4, "not an absolute http(s) URL"),
    ]
    assert "http://x/1.jpg" not in str(rejected.to_pylist())  # rejected rows carry no values
    # Filed files are named by their whole file name: two files with one stem are two sources.
    assert [s.name for s in sources_in_dir(tmp_path)] == ["iwf.csv", "photographer.url.txt", "sio.parquet"]


def test_bad_source_settings_fail_naming_the_setting(tmp_path: Path):
    with pytest.raises(ConfigError, match="kind"):
        RemovalSource("s", "x", kind="md5")
    with pytest.raises(ConfigError, match="name"):
        RemovalSource("../etc", "x")
    with pytest.raises(ConfigError, match="names"):
        load_removal_list([RemovalSource("a", "x", kind="url"), RemovalSource("a", "y", kind="url")])
    with pytest.raises(ValueError, match="cannot read"):
        load_removal_list([RemovalSource("a", str(tmp_path / "missing.txt"), kind="url")])


def test_source_on_object_storage(tmp_path: Path, monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        s3.create_bucket(Bucket="lists")
        s3.put_object(Bucket="lists", Key="c3p/2026-11.txt", Body=f"{MD5}\n".encode())
        entries, rejected = load_removal_list([RemovalSource("c3p", "s3://lists/c3p/2026-11.txt", kind="image_md5")])
        assert entries.to_pylist() == [{"kind": "image_md5", "value": MD5, "source": "c3p", "listed_on": None,
                                     "host": None}]
        assert rejected.num_rows == 0
    finally:
        server.stop()


def test_pdq_hex_and_sql_distance_agree_with_python():
    a = render_image("blue", "star", seed=1)
    bits_a, _ = pdqhash.compute(np.asarray(a))
    buf = io.BytesIO()
    a.resize((200, 200)).save(buf, "JPEG", quality=60)  # resized and re-encoded
    bits_b, _ = pdqhash.compute(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    bits_c, _ = pdqhash.compute(np.asarray(render_image("red", "ring", seed=2)))
    ha, hb, hc = pdq_hex(bits_a), pdq_hex(bits_b), pdq_hex(bits_c)
    assert len(ha) == 64 and ha == ha.lower()
    assert int(ha, 16) >> 255 == int(bits_a[0])  # first bit is the most significant
    with duckdb.connect() as con:
        for x, y in [(ha, hb), (ha, hc), (hb, hc), (ha, ha)]:
            assert con.sql(f"SELECT {pdq_distance_sql(repr(x), repr(y))}").fetchall()[0][0] == pdq_distance(x, y)
    assert pdq_distance(ha, hb) <= 31 < pdq_distance(ha, hc)


def test_matches_sql_finds_every_kind():
    rows = pa.table({
        "SAMPLE_ID": [1, 2, 3, 4, 5],
        "URL": ["http://a.example/1.jpg", "http://sub.b.example/2.jpg", "http://c.example/p/3.jpg",
                "http://notb.example/4.jpg", "http://d.example/5.jpg"],
        "sha256": ["11" * 32, None, None, None, None], "md5": [None] * 5, "sha1": [None] * 5,
        "pdq": [None, None, None, None, "f" * 64], "pdq_quality": [None, None, None, None, 90],
    })
    entries = pa.table({
        "kind": ["url_sha256", "domain", "url_prefix", "pdq"],
        "value": [hashlib.sha256(b"http://a.example/1.jpg").hexdigest(), "b.example", "http://c.example/p/",
                  "f" * 63 + "0"],
        "source": ["s1", "s2", "s3", "s4"], "listed_on": [None] * 4,
    })
    with duckdb.connect() as con:
        con.register("r", rows)
        con.register("e", entries)
        got = sorted(con.sql(matches_sql("r", "e")).fetchall())
    assert got == [(1, "url_sha256", "s1"), (2, "domain", "s2"), (3, "url_prefix", "s3"), (5, "pdq", "s4")]
    assert len(KINDS) == 10


@pytest.mark.parametrize("max_distance", [0, 10, 31, 40])
def test_pdq_banded_matching_equals_comparing_every_pair(max_distance):
    """The banded equi-join finds exactly the (row, entry) pairs within the distance that comparing
    every pair finds, at and around the threshold."""
    rng = np.random.default_rng(max_distance)
    entries = [f"{int(rng.integers(0, 2**63)) << 193 | int(rng.integers(0, 2**63)):064x}" for _ in range(20)]

    def flipped(h: str, n: int) -> str:
        bits = rng.choice(256, size=n, replace=False)
        return f"{int(h, 16) ^ sum(1 << int(b) for b in bits):064x}"

    rows = [flipped(entries[i % 20], int(d)) for i, d in enumerate(rng.integers(0, 48, size=300))]
    rows += [f"{int(rng.integers(0, 2**63)):064x}" for _ in range(50)]
    rows_t = pa.table({"SAMPLE_ID": list(range(len(rows))), "pdq": rows, "pdq_quality": [90] * len(rows)})
    entries_t = pa.table({"kind": ["pdq"] * 20, "value": entries, "source": [f"s{i}" for i in range(20)]})
    with duckdb.connect() as con:
        con.register("r", rows_t)
        con.register("e", entries_t)
        banded = set(con.sql(pdq_matches_sql("r", "e", ["SAMPLE_ID"], pdq_max_distance=max_distance)).fetchall())
    expected = {(i, "pdq", f"s{j}") for i, h in enumerate(rows) for j, v in enumerate(entries)
                if pdq_distance(h, v) <= max_distance}
    assert banded == expected
    assert any(pdq_distance(rows[i], entries[int(s[1:])]) == max_distance for i, _, s in expected) or max_distance == 40
