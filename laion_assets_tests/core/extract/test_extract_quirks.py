"""Generated WARCs for each real-world quirk: framing, compression, damage, HTTP encodings, charsets."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest
from laion_assets_tests.core.extract._extract_warcgen import (build, chunked, deflate_gzip, gz, http_response, page, record, request, wat_record,
                              warcinfo)

from laion_assets.core.extract import BAD_RECORD_REASONS, ExtractConfig, TooManyBadRecords, extract_shard
from laion_assets.core.extract.warc import iter_records
from laion_assets.core.extract.wat import warc_location

IMG = '<html><body><img src="/cat.jpg" alt="A sleepy orange cat"><img src="dog.png" alt="A dog in the snow"></body></html>'
LOOSE = ExtractConfig(max_bad_record_ratio=1.0)


def run(data: bytes, config: ExtractConfig = LOOSE, **kw):
    return extract_shard(["mem.warc"], crawl="CC-T", config=config, open_fn=lambda _: io.BytesIO(data), **kw)


def pairs(res):
    return list(zip(res.table["url"].to_pylist(), res.table["text"].to_pylist()))


def test_bad_reason_vocabulary_is_the_documented_one():
    doc = open(__import__("pathlib").Path(__file__).resolve().parents[3] / "docs" / "extraction.md").read()
    assert all(f"`{r}`" in doc for r in BAD_RECORD_REASONS)


@pytest.mark.parametrize("compression", ["record", "file", "none"])
@pytest.mark.parametrize("version", ["1.0", "1.1", "0.17", "0.18"])
def test_versions_and_compressions(version, compression):
    recs = [warcinfo(), request("http://a.com/"), page("http://a.com/p/", IMG, version=version),
            page("http://b.com/", IMG.replace("cat", "owl"), version=version)]
    res = run(build(recs, compression))
    assert res.stats["records_read"] == 4 and res.stats["bad_records"] == 0
    assert pairs(res) == [("http://a.com/cat.jpg", "A sleepy orange cat"), ("http://a.com/p/dog.png", "A dog in the snow"),
                          ("http://b.com/owl.jpg", "A sleepy orange owl"), ("http://b.com/dog.png", "A dog in the snow")]


def test_offsets_are_gzip_member_offsets_for_per_record_gzip():
    recs = [warcinfo(), page("http://a.com/", IMG), page("http://b.com/", IMG)]
    members = [gz(r) for r in recs]
    res = run(b"".join(members))
    offs = sorted(set(res.table["warc_offset"].to_pylist()))
    assert offs == [len(members[0]), len(members[0]) + len(members[1])]
    plain = b"".join(recs)
    assert sorted(set(run(plain).table["warc_offset"].to_pylist())) == [len(recs[0]), len(recs[0]) + len(recs[1])]


def test_truncated_gzip_member_keeps_earlier_rows_and_the_cut_part():
    pad = "<!-- " + "".join(__import__("hashlib").sha256(bytes([i])).hexdigest() for i in range(8)) + " -->"
    data = build([page("http://a.com/", IMG), page("http://b.com/", IMG + pad)])
    res = run(data[:-40])  # gzip trailer and the tail of the (incompressible) padding gone
    assert pairs(res) == [("http://a.com/cat.jpg", "A sleepy orange cat"), ("http://a.com/dog.png", "A dog in the snow"),
                          ("http://b.com/cat.jpg", "A sleepy orange cat"), ("http://b.com/dog.png", "A dog in the snow")]
    assert res.errors.num_rows == 0 and res.stats["bad_records"] == 0 and res.stats["records_read"] == 2
    assert res.stats["records_cut_at_eof"] == 1 and res.stats["truncated_records"] == 1


def test_corrupt_gzip_member_is_skipped_and_reading_resumes():
    a, b, c = (gz(page(f"http://{h}.com/", IMG)) for h in "abc")
    broken = b[:30] + bytes(x ^ 0x5A for x in b[30:60]) + b[60:]
    res = run(a + broken + c)
    assert {u.split("/")[2] for u, _ in pairs(res)} == {"a.com", "c.com"}
    assert res.errors["reason"].to_pylist() == ["gzip_error"]


@pytest.mark.parametrize("compression", ["record", "none", "file"])
@pytest.mark.parametrize("delta", [+25, -25])
def test_lying_content_length(compression, delta):
    good = page("http://a.com/", IMG)
    liar = page("http://liar.com/", IMG, length=len(http_response(IMG.encode(), "text/html; charset=utf-8")) + delta)
    res = run(build([good, liar, page("http://c.com/", IMG)], compression))
    hosts = [u.split("/")[2] for u, _ in pairs(res)]
    assert hosts == ["a.com", "a.com", "c.com", "c.com"]  # the record after the liar is not lost
    assert res.errors["reason"].to_pylist() == ["length_mismatch"]
    assert res.errors["target_uri"].to_pylist() == ["http://liar.com/"]


def test_bad_content_length_and_garbage_between_records():
    recs = [page("http://a.com/", IMG), record("response", "http://x.com/", b"abc", length=None).replace(
        b"Content-Length: 3", b"Content-Length: three"), page("http://c.com/", IMG)]
    res = run(build(recs, "none"))
    assert [u.split("/")[2] for u, _ in pairs(res)] == ["a.com", "a.com", "c.com", "c.com"]
    assert res.errors["reason"].to_pylist() == ["bad_content_length"]
    res = run(page("http://a.com/", IMG) + b"some junk bytes\r\n" + page("http://c.com/", IMG))
    assert res.errors["reason"].to_pylist() == ["bad_warc_header"] and res.stats["pairs_kept"] == 4


def test_file_ending_inside_a_record_keeps_the_part_that_is_there():
    data = build([page("http://a.com/", IMG), page("http://b.com/", IMG)], "none")
    res = run(data[:-60])  # cut inside the second <img>: its cat is kept, the record flagged
    assert res.errors.num_rows == 0 and res.stats["records_cut_at_eof"] == 1
    assert pairs(res) == [("http://a.com/cat.jpg", "A sleepy orange cat"), ("http://a.com/dog.png", "A dog in the snow"),
                          ("http://b.com/cat.jpg", "A sleepy orange cat")]
    head_cut = data[: len(page("http://a.com/", IMG)) + 30]  # cut inside the WARC header: nothing to keep
    assert run(head_cut).errors["reason"].to_pylist() == ["truncated_record"]


def test_warc_truncated_record_is_scanned_not_bad():
    html = IMG[: IMG.index("<img src=\"dog")] + '<img src="dog.png" alt="A dog in the sn'
    res = run(build([page("http://a.com/", html, extra={"WARC-Truncated": "length"})]))
    assert res.stats["truncated_records"] == 1 and res.stats["bad_records"] == 0
    assert pairs(res) == [("http://a.com/cat.jpg", "A sleepy orange cat")]  # the cut tag never closed


def test_chunked_and_gzip_content_encoding():
    body = deflate_gzip(chunked(IMG.encode()))  # wrong order on purpose: must be a bad record
    ok = http_response(chunked(deflate_gzip(IMG.encode())), "text/html",
                       {"Transfer-Encoding": "chunked", "Content-Encoding": "gzip"})
    bad = http_response(b"\x1f\x8b\x08garbage", "text/html", {"Content-Encoding": "gzip"})
    br = http_response(b"\x0b\x02\x80", "text/html", {"Content-Encoding": "br"})
    res = run(build([record("response", "<http://a.com/>", ok), record("response", "http://b.com/", bad),
                     record("response", "http://c.com/", br)]))
    assert pairs(res) == [("http://a.com/cat.jpg", "A sleepy orange cat"), ("http://a.com/dog.png", "A dog in the snow")]
    assert res.errors["reason"].to_pylist() == ["bad_content_encoding", "bad_content_encoding"]
    assert body  # (kept to show the encodings compose chunked(gzip(html)))


def test_not_chunked_body_under_chunked_header_is_read_raw_and_bad_http():
    bad_chunk = http_response(b"zz\r\n" + IMG.encode(), "text/html", {"Transfer-Encoding": "chunked"})
    res = run(build([record("response", "http://a.com/", bad_chunk), record("response", "http://b.com/", b"garbage")]))
    assert res.errors["reason"].to_pylist() == ["bad_http"]
    assert res.stats["pairs_kept"] == 2 and res.stats["http_framing_warnings"] == 1


@pytest.mark.parametrize(
    ("charset", "declare", "text"),
    [
        ("gb2312", "http", "一只可爱的小猫"),
        ("windows-1251", "meta", "Красивая кошка"),
        ("shift_jis", "http", "かわいい猫の写真"),
        ("utf-8", "none", "Ein schöner Hund"),
        ("windows-1252", "none", "Très joli café"),
        ("iso-8859-1", "meta-http-equiv", "Très joli café"),
    ],
)
def test_charsets(charset, declare, text):
    meta = {"meta": f'<meta charset="{charset}">',
            "meta-http-equiv": f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'}.get(declare, "")
    html = f"<html><head>{meta}</head><body><img src=a.jpg alt='{text}'></body></html>".encode(charset)
    ct = f"text/html; charset={charset}" if declare == "http" else "text/html"
    res = run(build([page("http://a.com/", html, content_type=ct)]))
    assert res.table["text"].to_pylist() == [text]


def test_non_html_and_skipped_record_types():
    recs = [warcinfo(), request("http://a.com/"), record("metadata", "http://a.com/", b"fetchTimeMs: 5\r\n"),
            page("http://a.com/x.css", "body{}", content_type="text/css"),
            page("http://a.com/", gzip.compress(b"%PDF"), content_type="application/pdf"),
            record("revisit", "http://a.com/", b""), page("http://a.com/p", IMG, content_type="")]
    res = run(build(recs))
    st = res.stats
    assert (st["request_records"], st["metadata_records"], st["revisit_records"], st["non_html_records"]) == (1, 1, 1, 2)
    assert st["html_pages"] == 1 and st["pairs_kept"] == 2  # no Content-Type: sniffed as HTML


def test_resource_record_with_html():
    res = run(build([record("resource", "http://a.com/", IMG.encode(), content_type="text/html")]))
    assert res.stats["resource_records"] == 1 and res.stats["pairs_kept"] == 2


def test_too_many_bad_records_raises_with_counts_and_partial_result():
    data = build([page("http://a.com/", IMG)]) + b"\x1f\x8b\x08\x00garbage-not-deflate" + build([page("http://c.com/", IMG)])
    with pytest.raises(TooManyBadRecords, match=r"1 bad of 3 records") as exc:
        run(data, ExtractConfig(max_bad_record_ratio=0.05))
    assert exc.value.result.stats["pairs_kept"] == 4
    assert run(data, ExtractConfig(max_bad_record_ratio=0.5)).stats["bad_record_ratio"] == pytest.approx(1 / 3)


def test_progress_is_reported():
    seen = []
    recs = [page(f"http://h{i}.com/", IMG) for i in range(25)]
    run(build(recs), ExtractConfig(progress_every_pages=10), progress=seen.append)
    assert seen == [10, 20, 25]


def test_iter_records_on_empty_and_whitespace_files():
    assert list(iter_records(io.BytesIO(b""))) == []
    assert list(iter_records(io.BytesIO(b"\r\n\r\n"))) == []


@pytest.mark.parametrize("compression", ["record", "file", "none"])
def test_records_do_not_depend_on_where_file_reads_split_the_bytes(compression):
    """Every read size, down to one byte: same records, no damage. (A gzip member ending one byte before
    a read boundary used to leave a lone 0x1f, taken for garbage between members: a false gzip_error.)"""
    data = build([page(f"http://a.com/{i}", IMG) for i in range(4)], compression)
    want = [(r.offset, r.block) for r in iter_records(io.BytesIO(data))]
    assert len(want) == 4
    for size in range(1, len(data) + 2):
        got = list(iter_records(io.BytesIO(data), read_size=size))
        assert [(r.offset, getattr(r, "block", r)) for r in got] == want, size


def test_wat_path_gives_same_columns_as_warc_path():
    html = ('<html lang="en"><head><title>T</title><meta name="robots" content="noai">'
            '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/"></head><body>'
            '<img src="/a.jpg" alt="A sleepy orange cat"><img src="b.svg" alt="an svg icon"><img src="c.jpg">'
            '<img src="/a.jpg" alt="A sleepy orange cat"></body></html>')
    warc = run(build([page("http://a.com/p/", html)]))
    wat = run(build([warcinfo(), wat_record(
        "http://a.com/p/", [("/a.jpg", "A sleepy orange cat"), ("b.svg", "an svg icon"), ("c.jpg", None),
                            ("/a.jpg", "A sleepy orange cat")],
        metas=[{"name": "robots", "content": "noai"}], title="T",
        links=[{"path": "LINK@/href", "url": "https://creativecommons.org/licenses/by/4.0/", "rel": "license"}])]),
        ExtractConfig(input_format="wat", max_bad_record_ratio=1.0))
    cols = ["url", "text", "page_url", "crawl", "page_title", "caption_language", "license", "optout_page", "optout_reasons"]
    assert warc.table.select(cols).to_pylist() == wat.table.select(cols).to_pylist()
    for k in ("imgs_seen", "dropped_svg", "dropped_no_alt", "duplicates_removed", "pairs_kept", "pages_opted_out"):
        assert warc.stats[k] == wat.stats[k], k
    assert warc.table["page_language"].to_pylist() == ["en"]  # WAT has no <html lang>



def test_wat_rows_point_at_the_warc_response_record(tmp_path):
    """Common Crawl layout: the WAT's Container names the WARC (bare file name) and the record's gzip
    member offset; WAT rows carry that WARC path/offset/record id/date, equal to the WARC path's rows."""
    seg = tmp_path / "crawl-data" / "CC-MAIN-2024-22" / "segments" / "171.39"
    (seg / "warc").mkdir(parents=True)
    (seg / "wat").mkdir()
    name = "CC-MAIN-20240517-00000.warc.gz"
    pages = [("http://a.com/1", [("/a.jpg", "A sleepy orange cat"), ("/b.jpg", "A dog in the snow")]),
             ("http://b.com/2", [("x/c.jpg", "Red boats in a harbour"), ("d.svg", "an svg icon")]),
             ("http://c.com/3", [("/e.jpg", "Snowy mountain at dawn")])]
    ids = [f"<urn:uuid:0000000{i}-0000-0000-0000-000000000000>" for i in range(len(pages))]
    dates = ["2024-05-17T23:31:0%dZ" % i for i in range(len(pages))]
    members, offsets = [warcinfo()], []
    for (uri, imgs), rid, date in zip(pages, ids, dates):
        html = "<html><body>" + "".join(f'<img src="{s}" alt="{a}">' for s, a in imgs) + "</body></html>"
        members.append(page(uri, html, record_id=rid, date=date))
    data = b""
    for m in members:
        offsets.append(len(data))
        data += gz(m)
    warc_file = seg / "warc" / name
    warc_file.write_bytes(data)
    wat_recs = [warcinfo()] + [
        wat_record(uri, imgs, record_id=rid, date=date,
                   container={"Filename": name, "Compressed": True, "Offset": str(off)})
        for (uri, imgs), rid, date, off in zip(pages, ids, dates, offsets[1:])]
    wat_file = seg / "wat" / (name[: -len(".gz")] + ".wat.gz")
    wat_file.write_bytes(build(wat_recs))
    warc = extract_shard([str(warc_file)], crawl="C", config=LOOSE)
    wat = extract_shard([str(wat_file)], crawl="C", config=ExtractConfig(input_format="wat", max_bad_record_ratio=1.0))
    cols = ["url", "text", "page_url", "warc_path", "warc_offset", "warc_record_id", "warc_date"]
    assert wat.table.num_rows == 4
    assert wat.table.select(cols).to_pylist() == warc.table.select(cols).to_pylist()
    assert set(wat.table["warc_path"].to_pylist()) == {str(warc_file)}
    # Reading the WARC at the row's offset (one gzip member, no reader of ours) gives the page.
    raw = warc_file.read_bytes()
    for row in wat.table.to_pylist():
        rec = zlib.decompressobj(31).decompress(raw[row["warc_offset"]:])
        head, _, block = rec.partition(b"\r\n\r\n")
        assert head.startswith(b"WARC/1.0\r\nWARC-Type: response")
        assert f"WARC-Target-URI: {row['page_url']}".encode() in head
        assert f"WARC-Record-ID: {row['warc_record_id']}".encode() in head
        assert f"WARC-Date: {row['warc_date']}".encode() in head
        src = row["url"].rsplit("/", 1)[1]
        assert f'{src}" alt="{row["text"]}"'.encode() in block


def test_wat_container_resolution_rule():
    cc = "s3://commoncrawl/crawl-data/CC-MAIN-2024-22/segments/171.39/wat/X-00000.warc.wat.gz"
    assert warc_location(cc, "X-00000.warc.gz") == "s3://commoncrawl/crawl-data/CC-MAIN-2024-22/segments/171.39/warc/X-00000.warc.gz"
    assert warc_location(cc, "crawl-data/CC-MAIN-2024-22/segments/9/warc/Y.warc.gz") == \
        "s3://commoncrawl/crawl-data/CC-MAIN-2024-22/segments/9/warc/Y.warc.gz"
    assert warc_location(cc, "https://data.commoncrawl.org/a/b.warc.gz") == "https://data.commoncrawl.org/a/b.warc.gz"
    assert warc_location("/data/wats/f.wat.gz", "f.warc.gz") == "/data/wats/f.warc.gz"  # not CC layout: same folder
    assert warc_location("f.wat.gz", "f.warc.gz") == "f.warc.gz"
    assert warc_location("wet/f.wat.gz", "f.warc.gz") == "warc/f.warc.gz"


def test_wat_record_without_container_keeps_the_wat_location():
    res = run(build([wat_record("http://a.com/", [("/a.jpg", "A sleepy orange cat")], container={})]),
              ExtractConfig(input_format="wat", max_bad_record_ratio=1.0))
    assert res.table["warc_path"].to_pylist() == ["mem.warc"] and res.table["warc_offset"].to_pylist() == [0]


def test_wat_bad_json_is_a_bad_record():
    res = run(build([record("metadata", "http://a.com/", b"{not json", content_type="application/json")]),
              ExtractConfig(input_format="wat", max_bad_record_ratio=1.0))
    assert res.errors["reason"].to_pylist() == ["bad_wat_json"]
