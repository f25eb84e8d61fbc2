"""Every real WARC in ../shared/data/real-warc, with per-file expectations explained rule by rule.

README counts (taken with warcio + lxml): imgs = all <img>; src+alt = non-empty src and stripped alt.
Each img ends as exactly one of: a row, a duplicate, or one drop reason, so the counts must add up.
"""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest
from warcio.archiveiterator import ArchiveIterator

from laion_assets_tests.core.extract._extract_warcgen import real_warc_dir
from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.extract.htmlscan import decode_html, scan_html
from laion_assets.core.schemas.pairs import PAIR_SCHEMA

REAL = real_warc_dir()
pytestmark = [
    pytest.mark.real_warc,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real WARC folder {REAL} not present (shared test data)"),
]

# file: (records, html_pages, imgs (README), src+alt (README), expected stats beyond those)
EXPECTED = {
    # 2 responses are WARC-Truncated (length): their HTML is cut but still scanned; the 3rd response is
    # a gzip-encoded non-HTML body (skipped). All 861 imgs have alt; 4 alts are under 5 chars after
    # cleaning; one (url, text) repeats; two pages link a CC BY-SA 3.0 licence.
    "cc-2014-35-excerpt.warc.gz": (13, 3, 861, 861, dict(truncated_records=2, non_html_records=1,
        dropped_short_caption=4, duplicates_removed=1, pairs_kept=856, pages_with_license=2)),
    # one response, no warcinfo: 2 imgs lack alt, 6 kept.
    "cc-2019-jwarc.warc.gz": (1, 1, 8, 6, dict(dropped_no_alt=2, pairs_kept=6)),
    # gb2312 / windows-1251 / undeclared charsets; 121 imgs without alt, 6 alts too short, 10 .gif
    # images (counters, spacers), 3 repeated (url, text) pairs (same logo in header and footer).
    "cc-2020-34-resiliparse.warc.gz": (50, 16, 153, 32, dict(dropped_no_alt=121, dropped_short_caption=6,
        dropped_gif=10, duplicates_removed=3, pairs_kept=13)),
    # a Wikipedia page: 6 imgs without alt, 2 .svg (icons), 5 kept, CC BY-SA 4.0 licence link.
    "cc-2024-22-whirlwind.warc.gz": (4, 1, 13, 7, dict(dropped_no_alt=6, dropped_svg=2, pairs_kept=5,
        pages_with_license=1)),
    # wget crawl: <angle-bracketed> target URIs, chunked bodies; 120 .svg icons, 1 .gif, 1 duplicate.
    "wget-2024-dolma-0000.warc.gz": (48, 22, 240, 169, dict(dropped_no_alt=71, dropped_svg=120, dropped_gif=1,
        duplicates_removed=1, pairs_kept=47, non_html_records=2)),
    # 8 data: URI images (inline placeholders), 35 .svg, 30 repeated (url, text) across pages of one site.
    "wget-2024-dolma-0001.warc.gz": (34, 15, 149, 126, dict(dropped_no_alt=23, dropped_data_uri=8,
        dropped_svg=35, duplicates_removed=30, pairs_kept=53, non_html_records=2)),
}


def test_every_real_file_has_expectations():
    assert sorted(p.name for p in REAL.glob("*.warc*")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file(name):
    records, pages, imgs, src_alt, expected = EXPECTED[name]
    res = extract_shard([str(REAL / name)], crawl="CC-TEST")
    st = res.stats
    assert res.table.schema == PAIR_SCHEMA
    assert res.errors.num_rows == 0 and st["bad_records"] == 0
    assert (st["records_read"], st["html_pages"], st["imgs_seen"]) == (records, pages, imgs)
    assert st["imgs_seen"] - st["dropped_no_alt"] - st["dropped_no_src"] == src_alt
    for key, value in expected.items():
        assert st[key] == value, key
    # Healthy files from these writers need none of the tolerance of issue 10 (and lose nothing to it).
    quirks = ("warc_framing_warnings", "http_framing_warnings", "non_http_responses", "records_cut_at_eof",
              "pages_over_budget", "captions_redecoded_cp1252")
    assert {k: st[k] for k in quirks} == dict.fromkeys(quirks, 0)
    zero = {k for k in st if k.startswith("dropped_")} - set(expected)
    assert {k: st[k] for k in zero} == dict.fromkeys(zero, 0)
    # Every img is accounted for exactly once.
    drops = sum(v for k, v in st.items() if k.startswith("dropped_"))
    assert drops + st["duplicates_removed"] + st["pairs_kept"] == st["imgs_seen"]
    t = res.table.to_pydict()
    assert t["key"] == [f"{i:09d}" for i in range(res.table.num_rows)]
    assert set(t["crawl"]) == {"CC-TEST"} and set(t["warc_path"]) == {str(REAL / name)}
    assert all(u.startswith(("http://", "https://")) for u in t["url"] + t["page_url"])
    assert len(set(zip(t["url"], t["text"]))) == len(t["url"])
    assert all(5 <= len(x) <= 2000 and x == x.strip() and "\n" not in x for x in t["text"])
    assert all(d and o >= 0 for d, o in zip(t["warc_date"], t["warc_offset"]))
    assert all(lang for lang in t["caption_language"])


def test_offsets_point_at_the_record():
    """warc_offset is the gzip member of the record: reading from there yields that page."""
    path = REAL / "cc-2020-34-resiliparse.warc.gz"
    res = extract_shard([str(path)], crawl="X")
    with open(path, "rb") as f:
        for offset, page_url in set(zip(res.table["warc_offset"].to_pylist(), res.table["page_url"].to_pylist())):
            f.seek(offset)
            rec = next(iter(ArchiveIterator(f)))
            assert rec.rec_type == "response" and rec.rec_headers.get_header("WARC-Target-URI") == page_url


def test_angle_bracket_uris_are_unwrapped():
    res = extract_shard([str(REAL / "wget-2024-dolma-0000.warc.gz")], crawl="X")
    assert all(not u.startswith("<") for u in res.table["page_url"].to_pylist())


def test_charsets_decode_to_readable_captions():
    res = extract_shard([str(REAL / "cc-2020-34-resiliparse.warc.gz")], crawl="X")
    texts = res.table["text"].to_pylist()
    assert any(any("\u0400" <= c <= "\u04ff" for c in t) for t in texts)  # windows-1251 page -> Cyrillic
    assert any(any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts)  # gb2312 page -> CJK
    assert not any("\ufffd" in t for t in texts)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tag_scan_matches_lxml(name):
    """The regex scan finds the same <img> (src, alt) sequence as lxml's parser, page by page."""
    pages = 0
    with open(REAL / name, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type not in ("response", "resource"):
                continue
            headers = rec.http_headers if rec.rec_type == "response" else rec.rec_headers
            ctype = headers.get_header("Content-Type") or ""
            if "html" not in ctype:
                continue
            body = rec.content_stream().read()
            text, _ = decode_html(body, ctype)
            ours = [(a.get("src"), (a.get("alt") or "").strip() or None) if a else (None, None) for a in scan_html(text).imgs]
            ref = [(e.get("src"), (e.get("alt") or "").strip() or None) for e in lxml.html.fromstring(body).iter("img")]
            assert [a is None for _, a in ours] == [a is None for _, a in ref]
            # src is parsed only for imgs with an alt (the others are counted and dropped)
            assert [s for s, a in ours if a] == [s for s, a in ref if a]
            pages += 1
    assert pages == EXPECTED[name][1]


def test_shard_of_all_files_keeps_order_and_dedups_across_files():
    files = [str(REAL / n) for n in sorted(EXPECTED)]
    res = extract_shard(files, crawl="X")
    singles = sum(e[4]["pairs_kept"] for e in EXPECTED.values())
    assert res.stats["pairs_kept"] <= singles
    assert res.stats["records_read"] == sum(e[0] for e in EXPECTED.values())
    seen_order = list(dict.fromkeys(res.table["warc_path"].to_pylist()))
    assert seen_order == [f for f in files if f in seen_order]


def test_srcset_and_lazy_choices_do_not_change_real_counts_when_off():
    path = str(REAL / "wget-2024-dolma-0001.warc.gz")
    off = extract_shard([path], crawl="X", config=ExtractConfig(use_srcset=False, use_lazy_attributes=False))
    assert off.stats["imgs_seen"] == 149
    assert off.stats["pairs_kept"] <= extract_shard([path], crawl="X").stats["pairs_kept"] + off.stats["dropped_data_uri"]
