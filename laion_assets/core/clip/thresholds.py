"""Similarity thresholds keyed by the model that produced the scores (and language group where it matters).

A CLIP cosine means nothing without its model: LAION-5B kept English pairs at >= 0.28 under OpenAI's
ViT-B/32 and other languages at >= 0.26 under a *multilingual* CLIP (M-CLIP). Carrying 0.26 over to
non-English captions scored by an English-only model, or 0.28 to weights it was not calibrated on,
changes what the filter keeps. So every threshold here names its model and its source, and a model
without a row is an error (calibrate it: `python -m laion_assets.core.clip.calibrate`).

Language labels of short captions are unreliable ("a red square" -> pcm), so a row whose language
is not reliably known never gets a multilingual model's laxer per-language value: it gets the model's
strict one. An English-only model has one threshold for every language: it has no basis for a
discount on captions it was not trained to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from laion_assets.core.checks import quote_literal
from laion_assets.core.lib.validation import ConfigError, require_range

ENGLISH = "en"
OTHER = "other"  # every reliably-labelled language but English
CALIBRATE_COMMAND = "python -m laion_assets.core.clip.calibrate"


@dataclass(frozen=True)
class ModelThresholds:
    """One model's thresholds.

    strict: for English-only models the threshold of every row; for multilingual models the value
      of rows whose language is unknown or unreliable (never laxer than any group's).
    by_group: multilingual models only: language group (ENGLISH / OTHER) -> threshold.
    calibrated: False = a provisional value carried over from another model (reported in metadata).
    """

    model_id: str
    strict: float
    source: str
    multilingual: bool = False
    by_group: Mapping[str, float] = field(default_factory=dict)
    calibrated: bool = True

    def __post_init__(self) -> None:
        require_range(f"thresholds[{self.model_id}].strict", self.strict, -1.0, 1.0)
        for group, value in self.by_group.items():
            if group not in (ENGLISH, OTHER):
                raise ConfigError(f"thresholds[{self.model_id}].group", group, f"must be {ENGLISH!r} or {OTHER!r}")
            require_range(f"thresholds[{self.model_id}].{group}", value, -1.0, self.strict)
        if self.by_group and not self.multilingual:
            raise ConfigError(f"thresholds[{self.model_id}].by_group", dict(self.by_group),
                              "per-language values only for multilingual=True models")


LAION_5B_EN = "LAION-5B: English pairs kept at cosine >= 0.28 under OpenAI ViT-B/32"
LAION_5B_MULTI = "LAION-5B: non-English pairs kept at cosine >= 0.26 under M-CLIP (XLM-R Large + ViT-B/32)"

THRESHOLDS: Mapping[str, ModelThresholds] = MappingProxyType({
    row.model_id: row
    for row in (
        ModelThresholds("ViT-B-32@openai", 0.28, LAION_5B_EN),
        # LAION's mCLIP is not an open_clip model; its row is here so scores carried over from
        # LAION's own pipeline keep their meaning. English / unreliable rows take LAION's English bar.
        ModelThresholds(
            "M-CLIP/XLM-Roberta-Large-Vit-B-32", 0.28, LAION_5B_MULTI + "; en/unreliable rows: 0.28 (ours)",
            multilingual=True, by_group={ENGLISH: 0.28, OTHER: 0.26},
        ),
        # The project's tiny test CLIP was trained with a calibration loss aimed at the English bar
        # (docs/tiny-model.md): matching pairs >= 0.86, mismatched <= 0.27 on held-out images.
        ModelThresholds("laion-tiny@laion-tiny.pt", 0.28, "trained to LAION's English bar (docs/tiny-model.md)"),
        # The production default's weights have no published LAION threshold: LAION's English value
        # is used until a calibration against ViT-B-32@openai replaces it (docs/clip.md).
        ModelThresholds(
            "ViT-B-32@laion2b_s34b_b79k", 0.28,
            "provisional: LAION's OpenAI ViT-B/32 value, not calibrated for these weights",
            calibrated=False,
        ),
    )
})


def random_init_thresholds(model_id: str) -> ModelThresholds:
    """A placeholder row for random weights (benches, tests): their cosines mean nothing."""
    return ModelThresholds(model_id, 0.28, "placeholder: random weights, no meaningful threshold", calibrated=False)


def language_group(language: str | None) -> str | None:
    """'en', 'en-US', 'EN_gb' -> ENGLISH; any other code -> OTHER; empty -> None."""
    if not language or not language.strip():
        return None
    base = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return ENGLISH if base == "en" else OTHER


def thresholds_of(model_id: str, table: Mapping[str, ModelThresholds] = THRESHOLDS) -> ModelThresholds:
    row = table.get(model_id)
    if row is None:
        raise ConfigError(
            "model_id", model_id,
            f"no similarity threshold for this model (known: {', '.join(sorted(table))}); pick one with "
            f"`{CALIBRATE_COMMAND}` and add it to laion_assets/core/clip/thresholds.py",
        )
    return row


def threshold_for(model_id: str, language: str | None, language_reliable: bool | None,
                  table: Mapping[str, ModelThresholds] = THRESHOLDS) -> float:
    """The similarity a pair scored by `model_id` must reach to be kept."""
    row = thresholds_of(model_id, table)
    if not row.multilingual or not language_reliable:
        return row.strict
    group = language_group(language)
    return row.strict if group is None else float(row.by_group.get(group, row.strict))


def threshold_sql(model_col: str, language_col: str, reliable_col: str, *, fallback_sql: str | None = None,
                  scored_sql: str = "true", table: Mapping[str, ModelThresholds] = THRESHOLDS) -> str:
    """The same rule as `threshold_for`, as a DuckDB expression over three columns.

    NULL where the model column is NULL or `scored_sql` is false (nothing scored). For a model not in the table the value of
    `fallback_sql` (e.g. the threshold recorded at scoring time, which came from a table too) if it
    is not NULL; otherwise the query fails (DuckDB `error()`): a filter never keeps a row against a
    missing threshold.
    """
    lang = f"lower(split_part(replace(trim(coalesce({language_col}, '')), '_', '-'), '-', 1))"
    whens = [f"WHEN {model_col} IS NULL OR NOT coalesce({scored_sql}, false) THEN NULL"]
    for row in table.values():
        m = f"{model_col} = {quote_literal(row.model_id)}"
        if row.multilingual:
            for group, value in row.by_group.items():
                cond = f"{lang} = 'en'" if group == ENGLISH else f"{lang} NOT IN ('en', '')"
                whens.append(f"WHEN {m} AND coalesce({reliable_col}, false) AND {cond} THEN {float(value)!r}")
        whens.append(f"WHEN {m} THEN {float(row.strict)!r}")
    known = ", ".join(sorted(table))
    err = quote_literal(f": no similarity threshold for this model (known: {known}); run {CALIBRATE_COMMAND}")
    fail = f"CAST(error('model_id=' || {model_col} || {err}) AS DOUBLE)"
    fallback = fail if fallback_sql is None else f"coalesce(CAST({fallback_sql} AS DOUBLE), {fail})"
    return f"(CASE {' '.join(whens)} ELSE {fallback} END)"
