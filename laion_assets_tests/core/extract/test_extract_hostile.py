"""Issue 19/22 extraction cases: resync at the next gzip member, per-page and per-URL caps, the repair
cache bounded by bytes, lazy attributes that are not URLs, repair that keeps correct text."""

from __future__ import annotations

import io
import sys

import pytest
from laion_assets_tests.core.extract._extract_warcgen import build, gz, page

from laion_assets.core.extract import DROP_REASONS, ExtractConfig, extract_shard
from laion_assets.core.extract import captions
from laion_assets.core.extract.captions import clean_caption
from laion_assets.core.extract.config import COUNT_KEYS
from laion_assets.core.extract.urls import parses_as_url, pick_src
from laion_assets.core.extract.warc import BadRecord, Record, iter_records

LOOSE = ExtractConfig(max_bad_record_ratio=1.0)
LAZY = ExtractConfig().lazy_attributes


def run(data: bytes, config: ExtractConfig = LOOSE):
    return extract_shard(["mem.warc.gz"], crawl="CC-T", config=config, open_fn=lambda _: io.BytesIO(data))


def invariant(st) -> None:
    assert sum(st[f"dropped_{r}"] for r in DROP_REASONS) + st["duplicates_removed"] + st["pairs_kept"] == st["imgs_seen"]


GOOD1 = page("https://a.example/1", '<img src="/one.jpg" alt="the first good image">')
GOOD2 = page("https://a.example/2", '<img src="/two.jpg" alt="the second good image">')


@pytest.mark.parametrize("junk", [
    gz(GOOD1),  # a nested gzip member (gzip inside gzip)
    b"\x00\x01\x02binary junk without a line end",
    b"junk line\nmore junk",
    b"text that mentions WARC/1.0 inside a line",
    bytes(range(256)) * 40,
], ids=["nested_gzip", "binary", "lines", "warc_in_line", "bytes_10k"])
def test_member_with_non_warc_bytes_does_not_lose_the_next_record(junk):
    data = gz(GOOD1) + gz(junk) + gz(GOOD2)
    recs = list(iter_records(io.BytesIO(data)))
    assert [type(r) for r in recs] == [Record, BadRecord, Record]
    assert recs[2].target_uri == "https://a.example/2"
    assert recs[2].offset == len(gz(GOOD1)) + len(gz(junk))  # the good member's own file offset
    res = run(data)
    assert res.table["url"].to_pylist() == ["https://a.example/one.jpg", "https://a.example/two.jpg"]
    assert res.errors["reason"].to_pylist() == ["bad_warc_header"]


def test_many_junk_members_resync_in_linear_time():
    """20,000 one-byte junk members then a good record: found, in well under a second of work."""
    import time

    data = gz(GOOD1) + b"".join(gz(b"x") for _ in range(20_000)) + gz(GOOD2)
    t0 = time.process_time()
    res = run(data)
    assert time.process_time() - t0 < 5.0
    assert res.table.num_rows == 2


def test_rows_per_page_are_capped_and_counted():
    imgs = "".join(f'<img src="/i{i}.jpg" alt="caption number {i}">' for i in range(300))
    res = run(build([page("https://big.example/p", imgs), GOOD2]), ExtractConfig(max_page_rows=100))
    st = res.stats
    assert res.table.num_rows == 101  # 100 from the big page, the next page untouched
    assert st["dropped_page_row_cap"] == 200
    assert res.table["url"].to_pylist()[99:] == ["https://big.example/i99.jpg", "https://a.example/two.jpg"]
    invariant(st)


def test_default_row_cap_bounds_a_tag_soup_page():
    imgs = '<img src="/x.jpg" alt="same host caption %d">' * 1
    html = "".join(imgs % i for i in range(5000))
    res = run(build([page("https://soup.example/", html)]))
    assert res.table.num_rows == ExtractConfig().max_page_rows == 2000
    assert res.stats["dropped_page_row_cap"] == 3000
    invariant(res.stats)


def test_long_urls_are_dropped_and_counted():
    long_path = "/" + "a" * 2_000_000 + ".jpg"
    html = f'<img src="{long_path}" alt="a two megabyte url"><img src="/ok.jpg" alt="a normal image url">'
    res = run(build([page("https://h.example/", html)]))
    assert res.table["url"].to_pylist() == ["https://h.example/ok.jpg"]
    assert res.stats["dropped_long_url"] == 1
    # the resolved length counts: a relative URL under the cap that a long base pushes over it
    cfg = ExtractConfig(max_url_chars=64)
    res = run(build([page("https://h.example/" + "d" * 50 + "/", '<img src="img/x.jpg" alt="relative but long">')]), cfg)
    assert res.table.num_rows == 0 and res.stats["dropped_long_url"] == 1
    invariant(res.stats)
    assert "dropped_long_url" in COUNT_KEYS and "dropped_page_row_cap" in COUNT_KEYS


def test_repair_cache_is_bounded_by_bytes_and_keyed_on_the_cut_text():
    captions._cache.clear()
    captions._sizes.clear()
    captions._cache_bytes = 0
    big = "é" * 100_000  # non-ASCII: goes through the repair cache
    for i in range(400):
        text, cut = clean_caption(f"{i} {big}")
        assert cut and len(text) == 2000
    assert captions.cache_bytes() <= captions.CACHE_MAX_BYTES
    # no key longer than the cut: 400 x 100k-character alts hold at most 400 x 8000-character keys
    assert max(map(len, captions._cache)) <= captions.RAW_CUT_FACTOR * 2000
    real = sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in captions._cache.items())
    assert real <= captions.cache_bytes() <= captions.CACHE_MAX_BYTES
    for i in range(20_000):  # many distinct short ones: evicted oldest first, bytes stay bounded
        clean_caption(f"café number {i} " * 20)
    assert captions.cache_bytes() <= captions.CACHE_MAX_BYTES
    assert sum(sys.getsizeof(k) + sys.getsizeof(v) + 64 for k, v in captions._cache.items()) <= captions.cache_bytes()
    assert sum(captions._sizes[k] for k in captions._cache) == captions.cache_bytes()


@pytest.mark.parametrize("value", [
    "[https://cdn.example/x.jpg, (default)]",
    "{\"src\": \"https://cdn.example/x.jpg\"}",
    "https://cdn.example/x.jpg 1x, https://cdn.example/y.jpg 2x",
    "(https://cdn.example/x.jpg)",
    "javascript:void(0)",
    "http://",
])
def test_lazy_attribute_that_is_not_a_url_is_not_taken(value):
    attrs = {"data-lazy": value, "src": "/real.jpg", "alt": "x"}
    assert not parses_as_url(value)
    assert pick_src(attrs, True, True, LAZY) == "/real.jpg"
    html = f'<img data-lazy="{value}" alt="a lazy image caption">'
    res = run(build([page("https://p.example/dir/", html)]))
    assert res.table.num_rows == 0  # no junk URL made from it (and no src to fall back to)
    assert res.stats["dropped_no_src"] == 1


@pytest.mark.parametrize("value", ["https://cdn.example/x.jpg", "/img/x.jpg", "x.jpg?w=300,h=200", "//cdn.example/a.png",
                                   "https://res.cloudinary.com/d/image/upload/w_300,h_200/x.jpg"])
def test_lazy_attribute_that_is_a_url_is_taken(value):
    assert parses_as_url(value)
    assert pick_src({"data-lazy": value, "src": "/placeholder.gif"}, True, True, LAZY) == value


def test_repair_keeps_correct_text_and_fixes_mojibake():
    assert clean_caption("\u201cquoted\u201d and it\u2019s fine")[0] == "\u201cquoted\u201d and it\u2019s fine"
    assert clean_caption("price \x80 five euro")[0] == "price five euro"  # a C1 control: removed, never "€"
    assert "\u20ac" not in clean_caption("\x80\x80 five euro")[0]
    assert clean_caption("\ufb01ne \uff21\uff22\uff23 letters")[0] == "\ufb01ne \uff21\uff22\uff23 letters"  # ligature, full width
    # what is broken is repaired
    assert clean_caption("caf\u00c3\u00a9 au lait")[0] == "café au lait"
    assert clean_caption("\u00e2\u20ac\u0153quoted\u00e2\u20ac\x9d text")[0] == "\u201cquoted\u201d text"
    assert clean_caption("Fish &amp; chips")[0] == "Fish & chips"
