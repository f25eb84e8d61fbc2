"""Issue 18, requests and matching: every spelling of a removed URL or host matches, IP addresses are
never suffix-matched, CSV is strict, a bad request fails only itself, sources are named by the whole
file name, over-broad entries are flagged, receipts say what landed, and the filing command works on
a local and an S3 (moto) root."""

import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.core.removal.canonical import IP_HOST_PATTERN, canonical_columns, canonical_host, canonical_parts, is_ip_host
from laion_assets.core.removal.entries import matches_sql, normalize
from laion_assets.core.removal.guards import flag_entries, flag_entry
from laion_assets.core.removal.receipts import initial_receipt, landed_receipt, receipts_summary, receipts_table
from laion_assets.core.removal.requests import ACCEPTED, REJECTED, applied_tables, read_request, read_requests
from laion_assets.core.storage.s3 import S3Storage
from laion_assets.takedown import main
from laion_assets.testing.s3 import moto_s3

ROW_URL = "http://images.example.com/photos/a~b/cat.jpg?size=large"
# Every spelling of ROW_URL the issue names: case, trailing dot, default port, escaped unreserved
# characters, full-width and ideographic dots, a fragment, surrounding whitespace.
URL_SPELLINGS = [
    "HTTP://IMAGES.EXAMPLE.COM/photos/a~b/cat.jpg?size=large",
    "http://images.example.com./photos/a~b/cat.jpg?size=large",
    "http://images.example.com:80/photos/a~b/cat.jpg?size=large",
    "http://images.example.com/photos/a%7Eb/cat.jpg?size=large",
    "http://images.example.com/photos/a%7eb/%63at.jpg?%73ize=large",
    "http://images\uff0eexample\uff0ecom/photos/a~b/cat.jpg?size=large",
    "http://images\u3002example.com/photos/a~b/cat.jpg?size=large",
    "http://Images.Example.Com.:80/photos/a%7Eb/cat.jpg?size=large#top",
    "  http://images.example.com/photos/a~b/cat.jpg?size=large\n",
]
IDN_ROW = "https://xn--bcher-kva.example/p/1.jpg"
IDN_SPELLINGS = ["https://bücher.example/p/1.jpg", "https://BÜCHER.example:443/p/1.jpg", "https://xn--BCHER-kva.example./p/1.jpg"]
IP_ROW = "http://127.0.0.1/i.jpg"
IP_SPELLINGS = ["http://0x7f.1/i.jpg", "http://2130706433/i.jpg", "http://0177.0.0.1/i.jpg", "http://127.1/i.jpg"]
DOMAIN_SPELLINGS = ["example.com", "EXAMPLE.COM.", "*.example.com", "https://Example.com:443/x", "example\uff0ecom"]
PREFIX_SPELLINGS = ["HTTP://images.EXAMPLE.com/photos/", "http://images.example.com.:80/photos/a%7E",
                    "http://images\uff0eexample.com/photos/a~b/"]


def _match(urls: list[str], entries: list[tuple[str, str]], *, normalized: bool = True) -> set[int]:
    """SAMPLE_IDs of `urls` (rows with the filter stage's canonical columns) matched by `entries`."""
    canon, hosts = canonical_columns(urls)
    rows = pa.table({"SAMPLE_ID": list(range(len(urls))), "URL": urls, "URL_CANONICAL": canon,
                     "HOST_CANONICAL": hosts, "sha256": [None] * len(urls), "md5": [None] * len(urls),
                     "sha1": [None] * len(urls), "pdq": pa.nulls(len(urls), pa.string()),
                     "pdq_quality": pa.nulls(len(urls), pa.int32())})
    from laion_assets.core.removal.entries import REMOVAL_SCHEMA, entry_host

    values = [(k, normalize(k, v) if normalized else v) for k, v in entries]
    e = pa.Table.from_pylist([{"kind": k, "value": v, "source": "s", "listed_on": None, "host": entry_host(k, v)}
                              for k, v in values], schema=REMOVAL_SCHEMA)
    with duckdb.connect() as con:
        con.register("r", rows)
        con.register("e", e)
        return {r[0] for r in con.sql(matches_sql("r", "e", canonical=True)).fetchall()}


@pytest.mark.parametrize("spelling", URL_SPELLINGS)
def test_every_spelling_of_a_url_entry_matches(spelling):
    assert _match([ROW_URL, "http://images.example.com/photos/other.jpg"], [("url", spelling)]) == {0}
    # ... and every spelling of the row is matched by the plain entry.
    assert _match([spelling, "http://images.example.com/photos/other.jpg"], [("url", ROW_URL)]) == {0}


@pytest.mark.parametrize("spelling", IDN_SPELLINGS + IP_SPELLINGS)
def test_idna_and_ipv4_forms_are_one_url(spelling):
    assert _match([IDN_ROW, IP_ROW], [("url", spelling)]) == ({0} if "example" in spelling else {1})


@pytest.mark.parametrize("spelling", DOMAIN_SPELLINGS)
def test_every_spelling_of_a_domain_entry_matches_host_and_subdomains(spelling):
    urls = [ROW_URL, "http://EXAMPLE.com./a.jpg", "http://notexample.com/a.jpg", "http://example.org/a.jpg"]
    assert _match(urls, [("domain", spelling)]) == {0, 1}


def test_idn_domain_entry_in_unicode_matches_punycode_rows():
    assert _match([IDN_ROW, "https://sub.xn--bcher-kva.example/x", "https://other.example/x"],
                  [("domain", "BÜCHER.example")]) == {0, 1}


@pytest.mark.parametrize("spelling", PREFIX_SPELLINGS)
def test_every_spelling_of_a_prefix_entry_matches(spelling):
    urls = [ROW_URL, "http://images.example.com/other/cat.jpg", "http://images.example.com.evil.org/photos/a~b/x"]
    assert _match(urls, [("url_prefix", spelling)]) == {0}


def test_ip_hosts_are_never_suffix_matched():
    urls = ["http://10.0.0.1/a.jpg", "http://192.168.0.1/b.jpg", "http://0.0.0.1/c.jpg", "http://[::1]/d.jpg"]
    assert _match(urls, [("domain", "0.1")]) == {2}  # `0.1` is the address 0.0.0.1, matched exactly
    assert _match(urls, [("domain", "0.0.1")]) == {2}
    assert _match(urls, [("domain", "10.0.0.1")]) == {0}
    assert _match(urls, [("domain", "[::1]")]) == {3}
    # Even a list stored without normalizing (an old one): a suffix never applies to an IP host.
    assert _match(urls, [("domain", "0.1"), ("domain", "0.0.1"), ("domain", "1")], normalized=False) == set()
    with duckdb.connect() as con:  # the SQL twin of is_ip_host (dbt macro is_ip_host) agrees
        for h in ["10.0.0.1", "[::1]", "example.com", "1.2.3", "a.1.2.3.4", "[fe80::1]"]:
            sql = con.execute(f"SELECT regexp_full_match(?, '{IP_HOST_PATTERN}')", [h]).fetchall()[0][0]
            assert sql == is_ip_host(h), h
    macro = (Path(__file__).resolve().parents[3] / "dbt" / "macros" / "laion.sql").read_text()
    assert IP_HOST_PATTERN.replace("\\", "\\") in macro


def test_canonical_forms():
    assert canonical_parts("HTTP://Example.COM.:80/a%7Eb/%2f?q=%7e#frag") == ("http://example.com/a~b/%2F?q=~", "example.com")
    assert canonical_parts("ftp://example.com/x") == (None, None)
    assert canonical_host("0x7f.1") == "127.0.0.1" and canonical_host("a/b") is None


def _csv(text: str) -> bytes:
    return text.encode()


def test_unclosed_quote_rejects_the_file_with_its_line_and_good_files_still_apply(tmp_path):
    files = {
        "broken.csv": _csv('kind,value\nurl,http://a.example/1.jpg\nurl,"http://a.example/2.jpg\n'
                           'url,http://a.example/3.jpg\nurl,http://a.example/4.jpg\n'),
        "balanced.csv": _csv('kind,value\nurl,"http://a.example/1.jpg\nurl,http://a.example/2.jpg"\n'),
        "empty.csv": b"",
        "header-only.csv": _csv("kind,value\n"),
        "latin1.csv": "kind,value\nurl,http://a.example/caf\xe9.jpg\n".encode("latin-1"),
        "noheader.csv": _csv("http://a.example/1.jpg\n"),
        "list.md5.txt": _csv("0123\n"),
        "good.csv": _csv("kind,value\nurl,http://a.example/9.jpg\nbogus,x\nurl,a,b\n"),
        "good.url.txt": _csv("http://a.example/8.jpg\n"),
        "README": b"not a request",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    requests = {r.file: r for r in read_requests([(n, str(tmp_path / n)) for n in files],
                                                 lambda p: (tmp_path / p).read_bytes())}
    assert "README" not in requests
    reasons = {f: r.reason for f, r in requests.items() if r.status == REJECTED}
    assert reasons["broken.csv"].startswith("line 3:")  # where the unclosed quote starts
    assert reasons["balanced.csv"].startswith("line 2: a quoted field runs over lines 2-3")
    assert reasons["empty.csv"] == "empty file" and reasons["header-only.csv"] == "no entries"
    assert reasons["latin1.csv"].startswith("not UTF-8")
    assert "'value' column" in reasons["noheader.csv"]
    assert reasons["list.md5.txt"].startswith("unknown kind 'md5'")
    assert requests["good.csv"].status == ACCEPTED and requests["good.url.txt"].status == ACCEPTED
    assert [(r["line"], r["reason"]) for r in requests["good.csv"].record()["entries_rejected"]] == [
        (3, "unknown kind"), (4, "3 fields, the header has 2")]
    entries, rejected = applied_tables(list(requests.values()))
    assert sorted(entries.column("value").to_pylist()) == ["http://a.example/8.jpg", "http://a.example/9.jpg"]
    assert {r["source"] for r in rejected.to_pylist() if r["line"] is None} == set(reasons)
    assert "a.example" not in json.dumps([r.record() for r in requests.values()])  # never values


def test_same_stem_files_are_two_sources():
    buf = io.BytesIO()
    pq.write_table(pa.table({"kind": ["url"], "value": ["http://b.example/2.jpg"]}), buf)
    a = read_request("iwf.csv", "iwf.csv", b"kind,value\nurl,http://b.example/1.jpg\n")
    b = read_request("iwf.parquet", "iwf.parquet", buf.getvalue())
    assert (a.source, b.source) == ("iwf.csv", "iwf.parquet") and a.request_id != b.request_id
    entries, _ = applied_tables([a, b])
    assert sorted(entries.column("source").to_pylist()) == ["iwf.csv", "iwf.parquet"]


def test_overbroad_entries_are_flagged_with_reasons():
    flagged = flag_entries([{"kind": k, "value": v} for k, v in [
        ("domain", "com"), ("domain", "co.uk"), ("domain", "0.1"), ("domain", "localhost"), ("url_prefix", "http://"),
        ("url_prefix", "https://a"), ("url_prefix", "https://co.uk/"), ("domain", "example.co.uk"),
        ("domain", "10.0.0.1"), ("url_prefix", "https://images.example.com/photos/"), ("image_md5", "00" * 16)]])
    assert [(f["value"], f["reason"].split(" ")[0]) for f in flagged] == [
        ("com", "public"), ("co.uk", "public"), ("0.1", "IP-like"), ("localhost", "single"),
        ("http://", "prefix"), ("https://a", "prefix"), ("https://co.uk/", "prefix")]
    assert flag_entry("domain", "bücher.example") is None


def test_receipts_land_with_versions_and_counts_and_a_request_matching_nothing_has_one():
    hit = read_request("hit.url.txt", "x", b"http://a.example/1.jpg\n").record()
    miss = read_request("miss.url.txt", "x", b"http://a.example/none.jpg\n").record()
    bad = read_request("bad.csv", "x", b"").record()
    manifests = {v: {"version": f"{v}-v2", "removal": {"sources": {
        "hit.url.txt": {"entries": 1, "rows_removed": 1}, "miss.url.txt": {"entries": 1, "rows_removed": 0}}}}
        for v in ("strict", "research")}
    receipts = [landed_receipt(initial_receipt(r, now="t0"), manifests, {"hit.url.txt": 1}, now="t1")
                for r in (hit, miss, bad)]
    by_file = {r["file"]: r for r in receipts}
    assert by_file["hit.url.txt"]["status"] == "landed" and by_file["hit.url.txt"]["rows_removed"] == {
        "research": 1, "strict": 1}
    assert by_file["miss.url.txt"]["status"] == "landed" and by_file["miss.url.txt"]["rows_removed"]["strict"] == 0
    assert by_file["hit.url.txt"]["versions"] == {"research": "research-v2", "strict": "strict-v2"}
    assert by_file["hit.url.txt"]["landed_at"] == "t1" and by_file["hit.url.txt"]["filed_at"] == "t0"
    assert by_file["bad.csv"]["status"] == "rejected" and by_file["bad.csv"]["reason"] == "empty file"
    # Not in the manifests (the publish failed or predates it): pending, never landed.
    assert landed_receipt(initial_receipt(hit, now="t0"), {"strict": {"version": "v1"}}, {}, now="t1")["status"] == "pending"
    # Built and checked on the list holding it, in a variant whose version did not change (no row of
    # it removed, its older manifest kept): landed there, 0 rows removed.
    kept = landed_receipt(initial_receipt(hit, now="t0"), {"strict": {"version": "v1"}}, {}, now="t1", applied=True)
    assert kept["status"] == "landed" and kept["rows_removed"] == {"strict": 0} and kept["versions"] == {"strict": "v1"}
    table = receipts_table(receipts)
    assert table.num_rows == 5  # two variants each for the landed ones, one row for the rejected
    summary = receipts_summary(receipts)
    assert [s["file"] for s in summary][-1] == "bad.csv" and summary[0]["rows_removed"] in ("research: 1, strict: 1",
                                                                                           "research: 0, strict: 0")


def test_file_command_on_a_local_root(tmp_path, capsys):
    good = tmp_path / "dmca-7.url.txt"
    good.write_text("http://a.example/1.jpg\n")
    assert main(["file", str(good), "--root", str(tmp_path / "root")]) == 0
    rid = capsys.readouterr().out.strip().splitlines()[-1]
    assert (tmp_path / "root" / "removal" / "requests" / "dmca-7.url.txt").read_bytes() == good.read_bytes()
    assert json.loads((tmp_path / "root" / "removal" / "receipts" / f"{rid}.json").read_text())["status"] == "pending"
    broken = tmp_path / "list.csv"
    broken.write_text('kind,value\nurl,"http://a.example/1.jpg\nurl,http://a.example/2.jpg\n')
    assert main(["file", str(broken), "--root", str(tmp_path / "root")]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert not (tmp_path / "root" / "removal" / "requests" / "list.csv").exists()
    # Another file under a name already filed with other content is refused, never overwrites it.
    other = tmp_path / "x.url.txt"
    other.write_text("http://a.example/2.jpg\n")
    assert main(["file", str(other), "--source", "dmca-7", "--root", str(tmp_path / "root")]) == 1
    assert (tmp_path / "root" / "removal" / "requests" / "dmca-7.url.txt").read_bytes() == good.read_bytes()


def test_file_command_on_an_s3_root(tmp_path, monkeypatch, capsys):
    with moto_s3() as s3:
        s3.create_bucket("takedowns")
        for k, v in s3.env.items():
            monkeypatch.setenv(k, v)
        path = tmp_path / "hashes.csv"
        path.write_text("kind,value\nimage_md5," + "ab" * 16 + "\n")
        assert main(["file", str(path), "--source", "ncmec-2026-12", "--root", "s3://takedowns/build"]) == 0
        rid = capsys.readouterr().out.strip().splitlines()[-1]
        st = S3Storage("s3://takedowns/build", s3.client(), cache_dir=tmp_path / "cache")
        assert st.read_bytes("removal/requests/ncmec-2026-12.csv") == path.read_bytes()
        assert json.loads(st.read_bytes(f"removal/receipts/{rid}.json"))["source"] == "ncmec-2026-12.csv"
