"""LAION caption rules: ftfy, newlines and non-printables removed, dropped under 5 characters, cut at 2000.

ftfy is the slow step (tens of microseconds per string), so it is skipped where it provably changes
nothing: ASCII text without '&' (HTML entities) or ESC (terminal escapes) — a property test checks
that this fast path equals running ftfy. Results are cached per distinct alt text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import ftfy

_WS = re.compile(r"\s+")
# Categories removed outright: controls, format chars (zero-width, bidi marks), surrogates, private
# use, unassigned. Line/paragraph separators and other spaces become a plain space.
_REMOVE = {"Cc", "Cf", "Cs", "Co", "Cn"}


@lru_cache(maxsize=1 << 16)
def _fix(alt: str) -> str:
    return ftfy.fix_text(alt)


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
    if not (alt.isascii() and "&" not in alt and "\x1b" not in alt):
        alt = _fix(alt)
    if not alt.isprintable():
        alt = _printable(alt)
    text = _WS.sub(" ", alt).strip() if ("  " in alt or "\xa0" in alt or not alt.isprintable()) else alt.strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False
