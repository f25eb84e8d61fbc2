"""LAION's caption and URL rules, page signals, one test (or property) per rule."""

from __future__ import annotations

import io
import re
from urllib.parse import urljoin, urlsplit

import ftfy
import pytest
from laion_assets_tests.core.extract._extract_warcgen import build, page
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.extract.captions import clean_caption
from laion_assets.core.extract.htmlscan import _ASCII_SAFE, _CC, _CC_FOLDS, mentions_cc, parse_attrs, scan_html, unescape_attr
from laion_assets.core.extract.signals import normalize_license, optout_reasons
from laion_assets.core.extract.urls import _check_url_slow, check_url, clean_url_string, largest_srcset_candidate, pick_src, resolve

CFG = ExtractConfig()


def shard_of(html: str, url: str = "http://site.com/dir/page.html", headers=None, config=CFG):
    data = build([page(url, html, headers=headers)])
    return extract_shard(["m"], crawl="C", config=config, open_fn=lambda _: io.BytesIO(data))


def rows(html: str, **kw):
    return shard_of(html, **kw).table.to_pylist()


# --- captions -----------------------------------------------------------------------------------

def test_caption_ftfy_newlines_nonprintables_and_bounds():
    assert clean_caption("caf\u00c3\u00a9 au lait")[0] == "café au lait"  # mojibake fixed by ftfy
    assert clean_caption("line one\nline\ttwo\r\n")[0] == "line one line two"
    assert clean_caption("zero\u200bwidth\u00a0space\x07")[0] == "zerowidth space"
    text, cut = clean_caption("x" * 2500)
    assert len(text) == 2000 and cut
    r = rows('<img src="a.jpg" alt="abcd"><img src="b.jpg" alt="  abcde  "><img src="c.jpg" alt="' + "y" * 3000 + '">')
    assert [x["text"] for x in r] == ["abcde", "y" * 2000]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_ascii_fast_path_equals_ftfy(alt):
    """Skipping ftfy for ASCII without '&' or ESC gives exactly what running ftfy first gives."""
    forced = clean_caption(ftfy.fix_text(alt))
    assert clean_caption(alt) == forced or ("&" in alt or "\x1b" in alt)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_caption_rules_hold_for_any_text(alt):
    text, cut = clean_caption(alt, 50)
    assert len(text) <= 50
    assert text == text.strip() and "  " not in text
    assert all(c.isprintable() or c == " " for c in text)
    assert clean_caption(text, 50)[1] is False  # a kept caption never needs a second cut


# --- URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "reason"),
    [("data:image/png;base64,AAAA", "data_uri"), ("javascript:void(0)", "javascript_uri"), ("JavaScript:x", "javascript_uri"),
     ("ftp://h.com/a.jpg", "non_http"), ("mailto:a@b.c", "non_http"), ("http://h.com/a.SVG", "svg"),
     ("http://h.com/a.svg?x=1", "svg"), ("https://h.com/a.gif", "gif"), ("http://h.com:99999/a.jpg", "invalid_url"),
     ("http:///a.jpg", "invalid_url"), ("http://" + "a" * 57 + ".com/x.jpg", "long_host"), ("http://h..com/x.jpg", "invalid_url")],
)
def test_url_drops(url, reason):
    assert check_url(url, 60) == (None, reason)


def test_url_kept_and_normalised():
    assert check_url("HTTP://h.com/a b.jpg#frag", 60) == ("http://h.com/a%20b.jpg", None)
    assert check_url("https://" + "a" * 56 + ".com/x.jpg", 60)[1] is None  # exactly 60 characters
    assert check_url("http://h.com/gifts/a.jpg", 60)[1] is None  # not a .gif path


def test_base_href_and_page_url_resolution():
    html = '<head><base href="/static/"></head><img src="a.jpg" alt="first image"><img src="//cdn.com/b.jpg" alt="second image">'
    assert [x["url"] for x in rows(html)] == ["http://site.com/static/a.jpg", "http://cdn.com/b.jpg"]
    assert [x["url"] for x in rows('<img src="../up.jpg" alt="relative up">')] == ["http://site.com/up.jpg"]


_seg = st.text(alphabet="abcxyz019-_.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(page_path=st.lists(_seg, max_size=3), base=st.one_of(st.none(), st.lists(_seg, max_size=2)),
       src=st.lists(_seg, min_size=1, max_size=3), absolute=st.booleans(), up=st.integers(0, 2))
def test_resolution_property(page_path, base, src, absolute, up):
    page_url = "http://h.com/" + "/".join(page_path)
    base_href = None if base is None else "/" + "/".join(base) + "/"
    rel = ("/" if absolute else "../" * up) + "/".join(src)
    got = resolve(page_url, base_href, rel)
    expected = urljoin(urljoin(page_url, base_href) if base_href else page_url, rel)
    assert got == expected
    assert urlsplit(got).netloc == "h.com" and got.endswith("/".join(src))
    url, why = check_url(got, 60)
    assert why is None or why in ("svg", "gif")


_url_chars = st.text(alphabet="ab/.?#:% @\\-_=&~AZ09[]", max_size=25)


@settings(max_examples=500, deadline=None)
@given(page_tail=_url_chars, base=st.one_of(st.none(), _url_chars), src=_url_chars)
def test_resolver_fast_paths_equal_urljoin(page_tail, base, src):
    page_url = "http://h.com/" + page_tail
    c = clean_url_string  # the WHATWG pre-processing every input gets first
    try:
        expected = urljoin(urljoin(c(page_url), c(base)) if base else c(page_url), c(src))
    except ValueError:
        return
    assert resolve(page_url, base, src) == expected


def test_resolver_dot_slash_before_a_colon_is_not_a_scheme():
    assert resolve("http://h.com/", None, "./A:") == urljoin("http://h.com/", "./A:") == "http://h.com/A:"
    assert resolve("http://h.com/0", None, "./?") == urljoin("http://h.com/0", "./?") == "http://h.com/"


@pytest.mark.parametrize("url, kept", [
    ("http://[2001:db8::1]/a.jpg", "http://[2001:db8::1]/a.jpg"),
    ("HTTPS://[2606:4700:4700::1111]:8443/img/x.png?s=1#f", "https://[2606:4700:4700::1111]:8443/img/x.png?s=1"),
    ("http://user@[::ffff:192.0.2.1]/a.jpg", "http://user@[::ffff:192.0.2.1]/a.jpg"),
    ("http://[2001:db8::1]/a.gif", None), ("http://[2001:db8::g]/a.jpg", None), ("http://[fe80::1%25eth0]/a.jpg", None),
    ("http://[v1.abc]/a.jpg", None), ("http://[2001:db8::1/a.jpg", None), ("http://[1.2.3.4]/a.jpg", None),
    ("http://[[::1]]/a.jpg", None),
])
def test_ipv6_literal_hosts(url, kept):
    got, why = check_url(url, 60)
    assert got == kept and (why is None) == (kept is not None)
    if kept is None and why != "gif":
        assert why == "invalid_url"


def test_ipv6_image_is_extracted():
    r = rows('<img src="http://[2001:db8::1]/a.jpg" alt="a photo on a v6 host"><img src="/b.jpg" alt="relative on v6 page">',
             url="http://[2001:db8::2]:8080/dir/page.html")
    assert [x["url"] for x in r] == ["http://[2001:db8::1]/a.jpg", "http://[2001:db8::2]:8080/b.jpg"]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["http://", "https://", "HTTP://", "ftp://", ""]),
       st.text(alphabet="abz09.-:@[]", min_size=0, max_size=12), _url_chars)
def test_check_url_fast_path_equals_urlsplit_path(scheme, host, tail):
    url = scheme + host + tail
    assert check_url(url, 10) == _check_url_slow(clean_url_string(url), 10)


def test_fast_url_host_class_is_what_re_i_matched():
    """_FAST_URL dropped re.I: its host class must still take exactly what [A-Za-z0-9] took under re.I."""
    import re

    from laion_assets.core.extract.urls import _HOST_CH

    old = re.compile(r"[A-Za-z0-9]", re.I)
    new = re.compile("[" + _HOST_CH + "]")
    assert all(bool(old.fullmatch(chr(c))) == bool(new.fullmatch(chr(c))) for c in range(0x110000))


@pytest.mark.parametrize("url", ["http\u017f://example.com/a.jpg", "HTTP\u017f://example.com/a.jpg",
                                 "http://\u212aelvin.com/a.jpg", "http://\u0130stanbul.com/a.jpg"])
def test_check_url_fast_path_on_case_folding_letters(url):
    assert check_url(url, 60) == _check_url_slow(url, 60)
    assert check_url("http\u017f://example.com/a.jpg", 60) == (None, "invalid_url")  # not an http(s) URL


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_check_url_never_raises_and_keeps_only_http(s):
    for cand in (s, "http://" + s, "https://h.com/" + s):
        url, why = check_url(cand, 60)
        assert (url is None) != (why is None)
        if url is not None:
            assert url.startswith(("http://", "https://")) and not any(c in url for c in " \t\n\r")


def test_srcset_and_lazy_attribute_choices():
    assert largest_srcset_candidate("a.jpg 320w, b.jpg 1024w, c.jpg 640w") == "b.jpg"
    assert largest_srcset_candidate("a.jpg, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    lazy = ("data-src", "data-original")
    assert pick_src({"src": "ph.gif", "data-src": "real.jpg"}, True, True, lazy) == "real.jpg"
    assert pick_src({"src": "ph.gif", "data-src": "real.jpg"}, False, True, lazy) == "ph.gif"
    assert pick_src({"src": "data:image/gif;base64,R0l", "srcset": "s.jpg 1x, l.jpg 2x"}, True, True, lazy) == "l.jpg"
    assert pick_src({"srcset": "s.jpg 1x, l.jpg 2x"}, True, False, lazy) is None
    html = ('<img src="data:image/gif;base64,R0l" data-original="/real.jpg" alt="lazy loaded photo">'
            '<img srcset="/s.jpg 300w, /l.jpg 900w" alt="responsive photo">')
    assert [x["url"] for x in rows(html)] == ["http://site.com/real.jpg", "http://site.com/l.jpg"]
    off = shard_of(html, config=ExtractConfig(use_lazy_attributes=False, use_srcset=False))
    assert off.table.num_rows == 0 and off.stats["dropped_data_uri"] == 1 and off.stats["dropped_no_src"] == 1


# --- HTML scanning -------------------------------------------------------------------------------

def test_scan_ignores_comments_scripts_and_reads_attribute_rules():
    html = ('<!-- <img src="c.jpg" alt="commented out"> --><script>document.write("<img src=s.jpg alt=scripted>")</script>'
            "<IMG SRC=a.jpg ALT='single quoted' alt=\"dup\"><img/src=\"b.jpg\"/alt=\"slash separated\">"
            '<img src="q.php?a=1&copy=2&amp;b=3" alt="Tom &amp; Jerry &lt;3 &#8364;&#x41;">')
    imgs = scan_html(html).imgs
    assert [i.get("src") for i in imgs] == ["a.jpg", "b.jpg", "q.php?a=1&copy=2&b=3"]
    assert imgs[0]["alt"] == "single quoted" and imgs[2]["alt"] == "Tom & Jerry <3 €A"
    assert unescape_attr("&notit; &amp x &not") == "&notit; & x ¬" and parse_attrs('a=1 b c="x"') == {"a": "1", "b": "", "c": "x"}



def test_cc_fold_characters_are_all_there_are():
    """The non-ASCII characters re.I matches against "creativecommons.org" are exactly _CC_FOLDS."""
    letters = re.compile("[" + re.escape("".join(set("creativecommons.org"))) + "]", re.I)
    folds = {chr(c) for c in range(0x80, 0x110000) if letters.fullmatch(chr(c))}
    assert folds == set(_CC_FOLDS)


_CC_PARTS = st.sampled_from(["creativecommons.org", "CreativeCommons.ORG", "creativecommon\u017f.org",
                             "\u0130", "\u0131", "creativecommons", ".org", "é", "中文", "Ж", "<a href=", " ", "x"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_CC_PARTS, max_size=8), st.binary(max_size=12), st.sampled_from(sorted(_ASCII_SAFE)))
def test_mentions_cc_on_bytes_equals_str_regex(parts, noise, codec):
    """The bytes pre-check gives what the str regex gives on the decoded text, broken bytes included."""
    raw = "".join(parts).encode(codec, "ignore") + noise + "creativecommons".encode(codec, "ignore")[: len(noise)]
    text = raw.decode(codec, "replace")
    assert mentions_cc(text, raw, codec) == (_CC.search(text) is not None)


def test_re_i_matches_ascii_letters_only_through_the_known_folds():
    """What the spelt-out (no re.I) patterns in htmlscan and urls rely on."""
    import re

    every = "".join(map(chr, range(0x80, 0x110000)))
    found = {(letter, ch) for letter in "abcdefghijklmnopqrstuvwxyz" for ch in re.findall(letter, every, re.I)}
    assert found == {("i", "\u0130"), ("i", "\u0131"), ("s", "\u017f"), ("k", "\u212a")}


_PRE_PARTS = st.sampled_from(["robots", "ROBOTS", "Robot\u017f", "robot", "tdm-", "TDM-", "tdm", "language", "LANGUAGE",
                              "languag", "alt", "ALT", "Alt", "=", " ", '"', "'", ">", "x", "\u0130", "\u0131", "\u212a",
                              "\u017f", "creativecommons.org", "CreativeCommons.ORG", "creat\u0130vecommons.org",
                              "creat\u0131vecommon\u017f.org", "creativecommons", ".org", "é", "中"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PRE_PARTS, max_size=10).map("".join))
def test_prefilters_without_re_i_equal_the_re_i_patterns(s):
    import re

    from laion_assets.core.extract.htmlscan import _HAS_ALT, _META_WANTED, _has_cc, _meta_wanted

    old_has_alt = re.compile(r"alt\s*=\s*(?:\"\s*[^\s\"]|'\s*[^\s']|[^\s>\"'])", re.I)
    assert _meta_wanted(s) == (_META_WANTED.search(s) is not None)
    assert _has_cc(s) == (_CC.search(s) is not None)
    assert (_HAS_ALT.search(s) is None) == (old_has_alt.search(s) is None)


@pytest.mark.parametrize("codec", ["cp932", "gb18030", "big5hkscs", "cp949"])
def test_mentions_cc_trail_byte_is_not_a_mention(codec):
    raw = b"\x83creativecommons.org" if codec != "cp949" else b"\x81creativecommons.org"
    text = raw.decode(codec, "replace")
    assert mentions_cc(text, raw, codec) == (_CC.search(text) is not None)


# --- page signals --------------------------------------------------------------------------------

def test_licence_links():
    assert normalize_license("//creativecommons.org/licenses/by-nc-sa/4.0/deed.de") == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert normalize_license("http://creativecommons.org/publicdomain/zero/1.0/legalcode") == "https://creativecommons.org/publicdomain/zero/1.0/"
    assert normalize_license("https://creativecommons.org/about") is None
    html = ('<a href="https://creativecommons.org/licenses/by/2.0/">x</a>'
            '<a rel="license" href="https://creativecommons.org/licenses/by-sa/3.0/">y</a><img src="a.jpg" alt="licensed photo">')
    assert rows(html)[0]["license"] == "https://creativecommons.org/licenses/by-sa/3.0/"
    assert rows('<img src="a.jpg" alt="unlicensed photo">')[0]["license"] is None


def test_optout_signals():
    assert optout_reasons([("robots", "index, NoAI"), ("tdm-reservation", "1")], {}) == ["meta_robots:noai", "meta_tdm_reservation"]
    assert optout_reasons([("robots", "noimageindex"), ("tdm-reservation", "0")], {}) == []
    assert optout_reasons([], {"x-robots-tag": "googlebot: noimageai", "tdm-reservation": "1"}) == [
        "header_tdm_reservation", "x_robots_tag:noimageai"]
    r = rows('<meta name="robots" content="noai, noimageai"><img src="a.jpg" alt="opted out photo">',
             headers={"X-Robots-Tag": "noai"})
    assert r[0]["optout_page"] and r[0]["optout_reasons"] == "meta_robots:noai,meta_robots:noimageai,x_robots_tag:noai"
    assert rows('<img src="a.jpg" alt="plain photo">')[0]["optout_page"] is False


def test_languages():
    r = rows('<html lang="de-AT"><img src="a.jpg" alt="Ein kleiner brauner Hund spielt im Garten mit einem Ball">'
             '<img src="b.jpg" alt="xQz9">' + '<img src="c.jpg" alt="12345">')
    assert r[0]["page_language"] == "de" and r[0]["caption_language"] == "de" and r[0]["caption_language_reliable"]
    assert r[1]["caption_language_reliable"] is False  # digits only: short, unreliable
    assert rows('<meta http-equiv="content-language" content="fr"><img src="a.jpg" alt="une photo">')[0]["page_language"] == "fr"
    off = shard_of('<img src="a.jpg" alt="a photo of a cat">', config=ExtractConfig(detect_caption_language=False))
    assert off.table["caption_language"].to_pylist() == [None]


def test_dedup_within_shard_keeps_first_and_counts():
    html = '<img src="a.jpg" alt="same caption"><img src="a.jpg" alt="same caption"><img src="a.jpg" alt="other caption">'
    res = shard_of(html)
    assert res.table["text"].to_pylist() == ["same caption", "other caption"] and res.stats["duplicates_removed"] == 1
