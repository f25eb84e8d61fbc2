"""The C parts of extraction (setup.py: `_tagscan`, `_langsum`) are built, and give exactly what the
Python they mirror gives: the tag scan match for match against htmlscan's regex (`regex_tags`), the
attribute parse against `regex_attrs`, whole pages against scan_html on the regex path, the page budget
at the same match with the same message. (The language sums are checked bit for bit in
test_extract_language.py.)"""

from __future__ import annotations

import random
import re
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laion_assets.core.extract import htmlscan, language
from laion_assets.core.extract.htmlscan import PageOverBudget, regex_attrs, regex_tags, scan_html, scan_tags


# Pieces that exercise every branch of the scanner: tag names in both cases and with the non-ASCII
# letters re.I folds onto ASCII ones, raw-text elements and their end tags, comments, quotes, `=`, the
# whitespace str `\s` takes (ASCII, \x1c-\x1f, NBSP, ideographic space, line separator), word characters
# for `\b`, lone surrogates (surrogateescape pages), astral characters, and the words the <a>/<meta>
# pre-filters look for.
PIECES = [
    "<", ">", "/", "!", "-", "=", '"', "'", " ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\u00a0", "\u2028",
    "\u3000", "a", "l", "t", "A", "L", "T", "x", "_", "1", "é", "img", "IMG", "iMg", "image", "base", "meta",
    "html", "link", "title", "a ", "script", "SCRIPT", "style", "textarea", "xmp", "</script", "</style",
    "</textarea >", "</xmp>", "</SCRİPT>", "<!--", "-->", "--", "<!-", "\u0130", "\u0131", "\u017f", "\u212a",
    "scr\u0130pt", "\u017ftyle", "\u0131mg", "ba\u017fe", "\udc80", "\U0001F600", "alt", "ALT", "aLt", "=x",
    "</", "<a ", "<img ", "<script>", "&amp;", "creativecommons.org", "CreativeCommons.ORG", "creat\u0131vecommons.org",
    "robots", "ROBOTS", "robot\u017f", "tdm-", "TDM-", "language", "LANGUAGE", "content=", "name=", "href=",
]


def _random_page(rng: random.Random, max_pieces: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, max_pieces)))


def test_the_c_parts_are_built():
    """setup.py compiles both modules at install; without them extraction is correct but slower, so a
    machine where they did not build (no C compiler) is told here rather than left to a slow crawl."""
    assert htmlscan.native_scan_built(), "laion_assets/core/extract/_tagscan did not build: run scripts/install.sh (needs gcc)"
    assert language.native_sums_built(), "laion_assets/core/extract/_langsum did not build: run scripts/install.sh (needs gcc)"


@pytest.mark.parametrize("want_a", [False, True])
def test_the_c_scan_gives_the_regex_matches_on_random_markup(want_a):
    from laion_assets.core.extract._tagscan import scan

    rng = random.Random(20261202 + want_a)
    for _ in range(30_000):
        text = _random_page(rng, 30)
        status, _, got = scan(text, want_a, 1 << 62, None, 0.0)
        assert status == 0
        assert got == regex_tags(text, want_a), repr(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=40), st.booleans())
def test_the_c_scan_gives_the_regex_matches_hypothesis(parts, want_a):
    from laion_assets.core.extract._tagscan import scan

    text = "".join(parts)
    assert scan(text, want_a, 1 << 62, None, 0.0)[2] == regex_tags(text, want_a)


def test_the_c_attribute_parse_is_the_regex_parse():
    from laion_assets.core.extract._tagscan import attrs

    rng = random.Random(7)
    extra = ["Src", " = ", "&lt", "&#x41;", "&copy=2", "\u0130D", "x" * 70, "X" * 70, "\u00f1ame", "DATA-SRC"]
    for _ in range(30_000):
        text = "".join(rng.choice(PIECES + extra) for _ in range(rng.randint(0, 14)))
        want = regex_attrs(text)
        got = attrs(text, 0, len(text), htmlscan.unescape_attr)
        assert got == want and list(got) == list(want), repr(text)
        a0 = rng.randint(0, len(text))
        a1 = rng.randint(a0, len(text))
        assert attrs(text, a0, a1, htmlscan.unescape_attr) == regex_attrs(text[a0:a1])
    with pytest.raises(ValueError):
        attrs("abc", 2, 9, htmlscan.unescape_attr)


def _both_paths(fn):
    assert htmlscan.native_scan_built(), "the C tag scan is not built: both paths would be the regex"
    before = htmlscan.use_native_scan(True)
    try:
        a = fn()
        htmlscan.use_native_scan(False)
        b = fn()
    finally:
        htmlscan.use_native_scan(before)
    return a, b


def _outcome(fn):
    try:
        return ("ok", fn())
    except PageOverBudget as e:
        return ("over", str(e))


def test_the_page_budget_stops_at_the_same_match_with_the_same_message():
    """max_tags is checked at every 1024th match (comments and raw text count), the deadline there too."""
    rng = random.Random(3)
    pages = ["<b>" * 5000, "<img alt=x>" * 3000, "<!---->" * 2100 + "<img alt=y>", "<script></script>" * 1500,
             "".join(_random_page(rng, 40) + "<meta name=robots content=x>" for _ in range(400))]
    for page in pages:
        n = len(regex_tags(page, True))  # the tags read, not the matches: the budget counts matches
        for max_tags in (0, 1, 1023, 1024, 1025, 2047, 2048, 3000, 5000, 1 << 40):
            for want in (False, True):
                a, b = _both_paths(lambda: _outcome(lambda: scan_tags(page, want, max_tags)))
                assert a == b, (page[:40], max_tags, want, n)
        # a deadline already past: both stop at the 1024th match, if the page has that many
        a, b = _both_paths(lambda: _outcome(lambda: scan_tags(page, False, 1 << 62, time.perf_counter() - 1)))
        assert a == b


def test_scan_html_is_the_same_on_both_paths_for_whole_pages():
    rng = random.Random(11)
    head = '<html lang="de"><head><title>T &amp; t</title><base href="/b/"><meta name="robots" content="noai">'
    for _ in range(400):
        body = "".join(rng.choice(PIECES + ['<img src="/a.jpg" alt="a cat">', '<a rel=license href="https://creativecommons.org/licenses/by/4.0/">']) for _ in range(60))
        page = head + body
        for raw in (None, page.encode("utf-8", "surrogatepass")):
            a, b = _both_paths(lambda: _outcome(lambda: scan_html(page, raw, "utf-8" if raw else None)))
            assert a == b


def test_scan_html_is_the_same_on_both_paths_on_the_real_pages():
    from warcio.archiveiterator import ArchiveIterator

    from laion_assets_tests.core.extract._extract_warcgen import real_warc_dir

    real = real_warc_dir()
    if not real.is_dir():
        pytest.skip(f"real WARC folder {real} not present (shared test data)")
    pages = []
    for path in sorted(real.glob("*.warc*")):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response" and rec.http_headers:
                    ctype = rec.http_headers.get_header("Content-Type") or ""
                    if "html" in ctype:
                        pages.append((rec.content_stream().read(), ctype))
    assert len(pages) >= 50
    for body, ctype in pages:
        text, codec = htmlscan.decode_html(body, ctype)
        a, b = _both_paths(lambda: scan_html(text, body, codec))
        assert a == b


def test_the_c_scans_assumptions_about_case_folding_hold():
    """What the C scan takes as given, recomputed over all of Unicode: under re.I only U+0130/U+0131 (i),
    U+017F (s) and U+212A (k) match an ASCII letter; no non-ASCII character lower-cases to a string that
    holds a letter of the words it looks for without re.I ("alt", "robots", "tdm-", "language",
    "creativecommons.org")."""
    folds = {}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        p = re.compile(letter, re.I)
        hits = [c for c in range(128, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and p.fullmatch(chr(c))]
        if hits:
            folds[letter] = hits
    assert folds == {"i": [0x130, 0x131], "k": [0x212A], "s": [0x17F]}
    letters = set("alt" "robots" "tdm-" "language" "creativecommons.org")
    lowers = [c for c in range(128, sys.maxunicode + 1) if letters & set(chr(c).lower())]
    assert lowers == [0x130]  # İ -> "i̇": an i, but followed by U+0307, so it cannot complete one of the words
    assert chr(0x130).lower() == "i\u0307"
