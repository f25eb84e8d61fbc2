"""Streaming tag scan of HTML: only <img>, <base>, <meta>, <html>, <link>, <title> (and <a> for licences).

Why not lxml: building a full tree per page costs more than the whole rest of the extraction. One
compiled regex walks the decoded page once; comments and raw-text elements (script, style, textarea)
are matched as wholes so nothing inside them is taken for a tag, as an HTML parser would. Attribute
values are unescaped with the HTML attribute rules. Tests compare the result with lxml on the real WARCs.
"""

from __future__ import annotations

import codecs
import re
import sys
import time
from dataclasses import dataclass, field
from html.entities import html5 as _HTML5

# `<image>` is an <img> (the HTML5 tree builder renames it).
_TAGS = r"(img|image|base|meta|html|link|title)"
_TAGS_A = r"(img|image|base|meta|html|link|title|a)"
# HTML tokenizer rules: a name runs to whitespace, '/', '>' or '='; a value is "...", '...' or unquoted
# up to whitespace or '>' (so a stray quote in `height=18"` is part of the value, as browsers read it).
_ATTRS = r"""((?:[\s/]++|[^\s/>][^\s/>=]*+(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]*+))?)*+)"""


def _scanner(tags: str) -> re.Pattern:
    # Comment and raw-text bodies are matched with possessive character-class runs ([^-]++, [^<]++),
    # which the regex engine runs in a tight loop, instead of a lazy .*? that tries the end at every char.
    # The common '<' prefix is factored out and followed by a one-character lookahead on the first
    # letters of every alternative, so the many '<' of other tags (<div, </p, <a ...) fail in one step
    # instead of trying each alternative (~35 % less scan time; same matches, tested against lxml).
    first = sorted({"!"} | {w[0] for w in re.findall(r"\w+", tags + "script|style|textarea|xmp")})
    # Every alternative also ends at the end of the text (\Z): a tag left open runs to EOF, as in a
    # browser's tokenizer, so the scan stops there instead of retrying from each later '<' (which made
    # `"<img " * 16000` quadratic: ~28 s). Such an unterminated tag is dropped (`>` missing), as browsers do.
    return re.compile(
        r"<(?=[" + "".join(first) + r"])(?:!--(?:[^-]++|-(?!->))*+(?:-->)?"
        r"|(script|style|textarea|xmp)\b[^>]*+(?:>|\Z)(?:[^<]++|<(?!/\1))*+(?:</\1\s*>)?"
        r"|" + tags + r"(?=[\s/>])" + _ATTRS + r"(?:>|\Z))",
        re.I,
    )


_SCAN = _scanner(_TAGS)
_SCAN_A = _scanner(_TAGS_A)
_TITLE_END = re.compile(r"</title\s*>", re.I)
_ATTR = re.compile(r"""([^\s/>][^\s/>=]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
# Cheap pre-filters: an <img> without a non-empty alt is only counted, a <meta> is parsed only when it
# may be one we read (robots, tdm-reservation, language). False positives are re-checked by parsing.
# (No re.I where it can be avoided: its case-folding tests make a search several times slower. Under
# re.I only these non-ASCII characters match an ASCII letter: İ ı -> i, ſ -> s, K (Kelvin) -> k; a
# test recomputes that, and the spelt-out forms below are tested equal to the re.I ones.)
_HAS_ALT = re.compile(r"[Aa][Ll][Tt]\s*=\s*(?:\"\s*[^\s\"]|'\s*[^\s']|[^\s>\"'])")
_META_WANTED = re.compile(r"robots|tdm-|language", re.I)  # reference for _meta_wanted
_CC = re.compile(r"creativecommons\.org", re.I)
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)

# The WHATWG Encoding Standard's labels (encoding.spec.whatwg.org, "Names and labels") -> the Python
# codec that decodes that encoding. Only these labels are honoured: a page naming a Python-only codec
# (utf-7, rot13, hex, base64, zlib, idna, ...) is decoded as if it named none. "replacement" labels
# (ISO-2022-KR/CN, HZ) decode to one U+FFFD, as the standard says.
_WHATWG = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
                 "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
                 "iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
                 "iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
              "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 "
              "latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 windows-949",
    "replacement": "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
    "x-user-defined": "x-user-defined",
}
WHATWG_LABELS: dict[str, str] = {label: codec for codec, labels in _WHATWG.items() for label in labels.split()}
_X_USER_DEFINED = {b: 0xF700 + b for b in range(0x80, 0x100)}


def _codec(label: str | None) -> str | None:
    """The Python codec for a WHATWG encoding label (ASCII whitespace trimmed, any case), else None."""
    if not label:
        return None
    return WHATWG_LABELS.get(label.strip("\t\n\x0c\r \"'").lower())


def charset_of(body: bytes, content_type: str | None) -> tuple[str, str]:
    """(codec, where it came from): BOM, then HTTP header, then <meta> in the first 4 KiB, then sniffing."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "bom"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "bom"
    if content_type:
        m = _CT_CHARSET.search(content_type)
        c = _codec(m.group(1)) if m else None
        if c:
            return c, "http"
    m = _META_CHARSET.search(body, 0, 4096)
    if m:
        c = _codec(m.group(1).decode("ascii", "replace"))
        if c and c.startswith("utf-16"):  # a page whose <meta> is readable as ASCII is not UTF-16
            c = "utf-8"
        if c:
            return c, "meta"
    try:
        body.decode("utf-8")
        return "utf-8", "sniffed"
    except UnicodeDecodeError as e:
        if e.start > len(body) - 4:  # only the last (cut) character is broken: still UTF-8
            return "utf-8", "sniffed"
    return "cp1252", "sniffed"


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    codec, how = charset_of(body, content_type)
    if codec == "replacement":
        return "\ufffd", codec
    if codec == "x-user-defined":
        return body.decode("latin-1").translate(_X_USER_DEFINED), codec
    if how == "sniffed" and codec == "utf-8":
        try:
            return body.decode("utf-8"), codec  # the sniff already proved it decodes: one pass, not two
        except UnicodeDecodeError:
            pass
    return body.decode(codec, "replace"), codec


# Codecs in which every ASCII character is encoded as its own byte and no non-ASCII character decodes
# to ASCII: a case-insensitive ASCII search over the bytes finds whatever it would find in the text.
_ASCII_SAFE = frozenset({
    "utf-8", "utf-8-sig", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
    "cp1257", "cp1258", "cp874", "gb18030", "cp932", "cp949", "big5hkscs", "euc_jp", "koi8-r", "koi8-u",
    "mac-cyrillic", "mac-roman", *(f"iso8859-{i}" for i in range(2, 17) if i != 12),
})
# Non-ASCII characters that `re.I` matches against a letter of "creativecommons.org" (İ, ı, ſ; a test
# recomputes this over all of Unicode). A page containing one goes through the str regex.
_CC_FOLDS = "\u0130\u0131\u017f"
# Their bytes in each codec where a character is in the text only if its own encoding is in the raw
# bytes (UTF-8 and the one-byte codecs: `replace` only ever adds U+FFFD). The multi-byte CJK codecs are
# left out (more than one byte sequence may decode to one character): there the text is searched.
_MULTIBYTE = frozenset({"gb18030", "cp932", "cp949", "big5hkscs", "euc_jp"})


def _fold_bytes(codec: str) -> tuple[bytes, ...]:
    out = []
    for ch in _CC_FOLDS:
        try:
            out.append(ch.encode("utf-8" if codec == "utf-8-sig" else codec))
        except UnicodeEncodeError:
            continue  # not in this codec's repertoire: cannot be in the text
    return tuple(out)


_CC_FOLD_BYTES = {c: _fold_bytes(c) for c in _ASCII_SAFE - _MULTIBYTE}


def mentions_cc(text: str, raw: bytes | None = None, codec: str | None = None) -> bool:
    """`_CC.search(text) is not None`, computed on the raw bytes when that is provably the same.

    The str regex with re.I has no literal fast path (~200 us on a 44 KB page); bytes.lower() plus a
    substring test is ~6x cheaper. With `text == raw.decode(codec, "replace")` and an ASCII-safe codec,
    an ASCII match in the text is an ASCII match in the bytes, so "not in the bytes" is "not in the text"
    unless the text holds one of the non-ASCII case folds of the pattern's letters. A hit in the bytes
    is confirmed on the text (in a multi-byte codec the first letter may be the trail byte of a character).
    """
    if raw is None or codec not in _ASCII_SAFE:
        return _CC.search(text) is not None
    if b"creativecommons.org" in raw.lower():
        return "creativecommons.org" in text or _CC.search(text) is not None
    if text.isascii():  # O(1)
        return False
    folds = _CC_FOLD_BYTES.get(codec)
    if folds is None:  # multi-byte codec: look in the text (a scan of the str, 3x ~7 us on a 44 KB page)
        folds_in_text = any(ch in text for ch in _CC_FOLDS)
    else:  # one-byte `in` is a memchr (~5 us); a 2-byte needle is slow on UTF-8 (~40 us), so only if needed
        folds_in_text = any(b[:1] in raw and b in raw for b in folds)
    return folds_in_text and _CC.search(text) is not None


def _meta_wanted(raw: str) -> bool:
    """`_META_WANTED.search(raw) is not None`, ~10x cheaper: str.lower() plus substring tests. The only
    non-ASCII character re.I matches to a letter of these words is ſ (for s), hence "robotſ"."""
    low = raw.lower()
    return "robots" in low or "tdm-" in low or "language" in low or "robot\u017f" in low


def _has_cc(raw: str) -> bool:
    """`_CC.search(raw) is not None`, cheaper: lower() plus a substring test, and the regex only when the
    string holds one of the non-ASCII case folds (İ ı ſ) that re.I would also take."""
    if "creativecommons.org" in raw.lower():
        return True
    return not raw.isascii() and any(ch in raw for ch in _CC_FOLDS) and _CC.search(raw) is not None


def _charref(m: re.Match) -> str:
    ref = m.group(1)
    if ref[0] == "#":
        try:
            n = int(ref[2:].rstrip(";"), 16) if ref[1] in "xX" else int(ref[1:].rstrip(";"))
        except ValueError:
            return m.group(0)
        if n == 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
            return "\ufffd"
        if 0x80 <= n <= 0x9F:  # windows-1252 remap, as browsers do
            try:
                return bytes([n]).decode("cp1252")
            except UnicodeDecodeError:
                return chr(n)
        return chr(n)
    if ref.endswith(";"):
        return _HTML5.get(ref, m.group(0))
    # Legacy named references without ';' (&amp, &copy): in attributes only when not followed by
    # '=' or an alphanumeric (HTML spec), so query strings like ?a=1&copy=2 stay intact.
    nxt = m.string[m.end() : m.end() + 1]
    if nxt == "=" or nxt.isalnum():
        return m.group(0)
    return _HTML5.get(ref, m.group(0))


def unescape_attr(value: str) -> str:
    """Character references in an attribute value, per the HTML attribute-value rules."""
    return _CHARREF.sub(_charref, value) if "&" in value else value


def parse_attrs(raw: str) -> dict[str, str]:
    """Attributes of one tag, names lower-cased, first occurrence wins (as HTML parsers do)."""
    if _native_attrs is not None:
        return _native_attrs(raw, 0, len(raw), unescape_attr)
    return regex_attrs(raw)


def regex_attrs(raw: str) -> dict[str, str]:
    """parse_attrs by the regex `_ATTR`: the reference the C `_tagscan.attrs` is tested against."""
    attrs: dict[str, str] = {}
    # findall gives (name, "dq", 'sq', unquoted) tuples, '' for the value groups that did not take part
    # (a name without value reads as ""), much cheaper than a Match object and four group() calls.
    for name, v2, v3, v4 in _ATTR.findall(raw):
        name = name.lower()
        if name in attrs:
            continue
        v = v2 or v3 or v4
        attrs[name] = _CHARREF.sub(_charref, v) if "&" in v else v
    return attrs


@dataclass(slots=True)
class PageScan:
    imgs: list[dict[str, str] | None] = field(default_factory=list)  # None: an <img> with no (non-empty) alt
    base_href: str | None = None
    html_lang: str | None = None
    title: str | None = None
    metas: list[tuple[str, str]] = field(default_factory=list)  # (name or http-equiv, content), lower-cased names
    license_hrefs: list[tuple[str, bool]] = field(default_factory=list)  # (href, rel=license)


class PageOverBudget(Exception):
    """The page needs more scanning work (tags) or time than the per-page budget allows."""


# What the tag scan gives scan_html: (code, attr_start, attr_end, end) per tag it reads, in page order.
TAG_IMG, TAG_IMAGE, TAG_BASE, TAG_META, TAG_HTML, TAG_LINK, TAG_TITLE, TAG_A, TAG_IMG_NO_ALT = range(9)
_TAG_CODES = {"img": TAG_IMG, "image": TAG_IMAGE, "base": TAG_BASE, "meta": TAG_META, "html": TAG_HTML,
              "link": TAG_LINK, "title": TAG_TITLE, "a": TAG_A}

try:  # the same scan in C (setup.py builds it; optional, so a machine without a compiler still installs)
    from ._tagscan import attrs as _BUILT_ATTRS
    from ._tagscan import scan as _BUILT_SCAN
except ImportError:  # pragma: no cover - test_native.py fails when it is not built
    _BUILT_SCAN = _BUILT_ATTRS = None
_native_scan, _native_attrs = _BUILT_SCAN, _BUILT_ATTRS


def native_scan_built() -> bool:
    """Whether the C tag scan was compiled (setup.py; needs a C compiler at install time)."""
    return _BUILT_SCAN is not None


def use_native_scan(enabled: bool) -> bool:
    """Take the C scan (True, when built) or the regex (False) from now on; returns the previous choice.
    For the equality tests and the benches' same-run A/B: both give the same results."""
    global _native_scan, _native_attrs
    before = _native_scan is not None
    _native_scan, _native_attrs = (_BUILT_SCAN, _BUILT_ATTRS) if enabled else (None, None)
    return before


def regex_tags(text: str, want_a: bool, max_tags: int = 1 << 62,
               deadline: float | None = None) -> list[tuple[int, int, int, int]]:
    """The tags scan_html reads, found by the regex (`_SCAN` / `_SCAN_A`): the reference that the C scan
    (`_tagscan.scan`) is tested against, and the path taken when it is not built.

    Every match counts towards `max_tags` (comments and raw-text elements too), checked with the deadline
    at every 1024th match. A tag whose name is spelt with a non-ASCII fold (`<İmg`) or that Python does not
    read (<link> without `want_a`) is skipped but still consumes its text; an <img> whose attributes have no
    "alt" (any case) is TAG_IMG_NO_ALT; an <a>/<link> that cannot pass `_has_cc` and a <meta> that
    fails `_meta_wanted` are skipped (scan_html reads nothing from them); a tag still open at the end of the page is no tag and ends the scan.
    """
    out: list[tuple[int, int, int, int]] = []
    open_at = len(text) if text[-1:] != ">" else -1  # only a match ending here can be a tag left open
    codes = _TAG_CODES
    for n, m in enumerate((_SCAN_A if want_a else _SCAN).finditer(text), 1):
        if not n & 1023:
            if n > max_tags:
                raise PageOverBudget(f"more than {max_tags} tags")
            if deadline is not None and time.perf_counter() > deadline:
                raise PageOverBudget(f"scan past the page time budget after {n} tags")
        tag = m.group(2)
        if tag is None:
            continue  # comment or raw-text element
        if m.end() == open_at:
            break  # a tag still open at the end of the page is no tag (and nothing follows it)
        code = codes.get(tag.lower())
        if code is None or (code == TAG_LINK and not want_a):
            continue
        if code == TAG_IMG:
            if "alt" not in m.group(3).lower():
                code = TAG_IMG_NO_ALT
        elif code == TAG_A or code == TAG_LINK:
            raw = m.group(3)
            if "creativecommons.org" not in raw.lower() and not any(ch in raw for ch in _CC_FOLDS):
                continue  # cannot pass _has_cc
        elif code == TAG_META and not _meta_wanted(m.group(3)):
            continue
        out.append((code, m.start(3), m.end(3), m.end()))
    return out


def scan_tags(text: str, want_a: bool, max_tags: int = 1 << 62,
              deadline: float | None = None) -> list[tuple[int, int, int, int]]:
    """`regex_tags`, in C when `_tagscan` is built (the same list; PageOverBudget at the same match)."""
    if _native_scan is None:
        return regex_tags(text, want_a, max_tags, deadline)
    clock = time.perf_counter if deadline is not None else None
    status, n, tags = _native_scan(text, want_a, min(max_tags, sys.maxsize), clock, deadline or 0.0)
    if status == 1:
        raise PageOverBudget(f"more than {max_tags} tags")
    if status == 2:
        raise PageOverBudget(f"scan past the page time budget after {n} tags")
    return tags


def scan_html(text: str, raw: bytes | None = None, codec: str | None = None, *, max_tags: int = 1 << 62,
              deadline: float | None = None) -> PageScan:
    """One pass over the page collecting what extraction needs.

    `raw`/`codec`: the bytes `text` was decoded from (optional; only lets the licence pre-check run on bytes).
    `max_tags`/`deadline` (time.perf_counter value): the page budget; PageOverBudget when exceeded.
    """
    page = PageScan()
    want_a = mentions_cc(text, raw, codec)
    tags = scan_tags(text, want_a, max_tags, deadline)
    imgs = page.imgs
    c_attrs = _native_attrs
    title_open = True  # no unclosed <title> seen yet (one failed search for </title> is enough)
    for n, (code, a0, a1, end) in enumerate(tags, 1):
        if not n & 1023 and deadline is not None and time.perf_counter() > deadline:
            raise PageOverBudget(f"reading tags past the page time budget after {n} tags")
        if code == TAG_IMG_NO_ALT:
            imgs.append(None)
        elif code == TAG_IMG:
            # the hot path (once per <img> with "alt" in its attributes): C reads the range in place;
            # an <img> whose parsed alt is blank is None
            a = c_attrs(text, a0, a1, unescape_attr) if c_attrs is not None else regex_attrs(text[a0:a1])
            alt = a.get("alt")
            imgs.append(a if alt and not alt.isspace() else None)
        elif code == TAG_IMAGE:
            # HTML's <image src> is an <img>; SVG's <image href> (foreign content, not renamed) is not.
            a = parse_attrs(text[a0:a1])
            if "src" in a:
                imgs.append(a if a.get("alt", "").strip() else None)
        elif code == TAG_A or code == TAG_LINK:  # only found when the page mentions creativecommons.org
            if _has_cc(raw := text[a0:a1]):
                a = parse_attrs(raw)
                href = a.get("href", "")
                if _has_cc(href):
                    page.license_hrefs.append((href, "license" in a.get("rel", "").lower().split()))
        elif code == TAG_META:  # only found when _meta_wanted holds (both scans filter exactly)
            a = parse_attrs(text[a0:a1])
            name = a.get("name") or a.get("http-equiv") or a.get("property")
            if name and "content" in a:
                page.metas.append((name.strip().lower(), a["content"]))
        elif code == TAG_BASE:
            if page.base_href is None:
                href = parse_attrs(text[a0:a1]).get("href")
                if href is not None and href.strip():
                    page.base_href = href.strip()
        elif code == TAG_HTML:
            if page.html_lang is None:
                a = parse_attrs(text[a0:a1])
                lang = a.get("lang") or a.get("xml:lang")
                if lang:
                    page.html_lang = lang
        elif code == TAG_TITLE and page.title is None and title_open:
            e = _TITLE_END.search(text, end)
            if e:
                page.title = unescape_attr(text[end : e.start()])
            else:
                title_open = False
    return page
