"""Caption language (py3langid, model shipped in the wheel) and page language (as declared by the page)."""

from __future__ import annotations

import re
from functools import lru_cache

_LANG_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # norm_probs: a probability in [0, 1], calibrated across text lengths, usable as a reliability score.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=1 << 16)
def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) for one caption; cached, since captions repeat across pages."""
    lang, prob = _identifier().classify(text)
    return lang, float(prob)


def is_reliable(text: str, prob: float, min_probability: float, min_chars: int) -> bool:
    return prob >= min_probability and len(text) >= min_chars


def normalize_page_language(value: str | None) -> str | None:
    """Primary subtag of a declared language ('en-US' -> 'en'); None when absent or not a language tag."""
    if not value:
        return None
    first = value.split(",")[0].strip()
    if not _LANG_TAG.match(first):
        return None
    return first.replace("_", "-").split("-")[0].lower()
