"""LAION caption rules: mojibake repaired, newlines and non-printables removed, dropped under 5
characters, cut at 2000.

Repair fixes only what is broken: ftfy's encoding repair (mojibake: UTF-8 read as latin-1/cp1252) and
its terminal-escape, surrogate, HTML-entity and line-break fixes. What the page says is kept: curly
quotes stay curly, ligatures and full-width letters stay, and a plan that only re-reads C1 controls as
windows-1252 (U+0080 -> the euro sign, no UTF-8 decode in it) is not taken.

ftfy is the slow step (tens of microseconds per string), so it is skipped where it provably changes
nothing: ASCII text without '&' (HTML entities) or ESC (terminal escapes); a property test checks that
this fast path equals running the repair. Repairs are cached per distinct alt text in a cache bounded
by bytes (`CACHE_MAX_BYTES`); an alt text is cut at `4 * max_chars` before repair, so neither the key
nor ftfy's work grows with what a page puts in one attribute.
"""

from __future__ import annotations

import re
import sys
import unicodedata

_WS = re.compile(r"\s+")
# Categories removed outright: controls, format chars (zero-width, bidi marks), surrogates, private
# use, unassigned. Line/paragraph separators and other spaces become a plain space.
_REMOVE = {"Cc", "Cf", "Cs", "Co", "Cn"}
# An alt text longer than this many times max_chars is cut before repair (bounds key size and work).
RAW_CUT_FACTOR = 4
CACHE_MAX_BYTES = 16 * 1024 * 1024
_cache: dict[str, str] = {}
_sizes: dict[str, int] = {}  # what each entry was charged: eviction gives back exactly that
_cache_bytes = 0
_cfg = None  # (repair config, the same without encoding repair), built on first use: ftfy loads lazily


def _configs():
    global _cfg
    if _cfg is None:
        import ftfy

        keep = dict(uncurl_quotes=False, fix_latin_ligatures=False, fix_character_width=False, fix_c1_controls=False)
        _cfg = (ftfy, ftfy.TextFixerConfig(**keep), ftfy.TextFixerConfig(**keep, fix_encoding=False))
    return _cfg


def repair(alt: str) -> str:
    """ftfy's repair of broken text only (see the module docstring)."""
    ftfy, cfg, no_encoding = _configs()
    fixed, plan = ftfy.fix_and_explain(alt, cfg)
    if plan and fixed != alt and any(op in ("encode", "decode") for op, _ in plan) and not any(
            op == "decode" and enc.startswith("utf-8") for op, enc in plan):
        fixed = ftfy.fix_text(alt, no_encoding)  # a C1 -> cp1252 re-read is not mojibake: keep the text
    return fixed


def _fix(alt: str) -> str:
    global _cache_bytes
    fixed = _cache.get(alt)
    if fixed is None:
        fixed = repair(alt)
        size = _str_bytes(alt) + _str_bytes(fixed) + 64  # key, value, dict slot
        while _cache and _cache_bytes + size > CACHE_MAX_BYTES:  # oldest first
            old = next(iter(_cache))
            del _cache[old]
            _cache_bytes -= _sizes.pop(old)
        if size <= CACHE_MAX_BYTES:
            _cache[alt] = fixed
            _sizes[alt] = size
            _cache_bytes += size
    return fixed


def _str_bytes(s: str) -> int:
    """The string's size once anything encodes it: CPython keeps a UTF-8 copy on a non-ASCII str
    (pyarrow encodes every caption it stores), which `getsizeof` counts only after the fact, so
    charging the size at insertion undercounted and evicting at the grown size let the total drift
    (found by the issue 19 fuzz campaign)."""
    return sys.getsizeof(s) if s.isascii() else sys.getsizeof(s) + len(s.encode("utf-8", "surrogatepass")) + 1


def cache_bytes() -> int:
    """Bytes held by the repair cache (keys, values, slots), never above CACHE_MAX_BYTES."""
    return _cache_bytes


def _printable(text: str) -> str:
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\x0c\x85" or cat in ("Zs", "Zl", "Zp"):  # ftfy keeps these as line breaks
            out.append(" ")
        elif cat not in _REMOVE:
            out.append(ch)
    return "".join(out)


def clean_caption(alt: str, max_chars: int = 2000) -> tuple[str, bool]:
    """(cleaned caption, was it cut). Whitespace runs collapse to one space; ends are stripped."""
    if len(alt) > RAW_CUT_FACTOR * max_chars:
        alt = alt[: RAW_CUT_FACTOR * max_chars]
    if not (alt.isascii() and "&" not in alt and "\x1b" not in alt):
        alt = _fix(alt)
    if not alt.isprintable():
        alt = _printable(alt)
    text = _WS.sub(" ", alt).strip() if ("  " in alt or "\xa0" in alt or not alt.isprintable()) else alt.strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False
