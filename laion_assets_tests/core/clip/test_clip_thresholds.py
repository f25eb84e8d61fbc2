"""Thresholds belong to the model that made the scores; unreliable language labels never get a discount."""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.core.clip.thresholds import (
    THRESHOLDS,
    ModelThresholds,
    threshold_for,
    threshold_sql,
)
from laion_assets.core.filter.shard import filter_shard
from laion_assets.core.schemas import DOWNLOAD_SCHEMA, PAIR_SCHEMA, SCORE_SCHEMA
from laion_assets.core.lib.validation import ConfigError

MCLIP = "M-CLIP/XLM-Roberta-Large-Vit-B-32"


def test_laion_values_only_where_they_apply():
    # OpenAI ViT-B/32 is English-only: 0.28 for every caption, no 0.26 for other languages
    for lang in ("en", "de", "pcm", None):
        assert threshold_for("ViT-B-32@openai", lang, True) == 0.28
    # the multilingual CLIP LAION used for other languages: 0.26 only for a reliable non-English label
    assert threshold_for(MCLIP, "de", True) == 0.26
    assert threshold_for(MCLIP, "pt-BR", True) == 0.26
    assert threshold_for(MCLIP, "en-US", True) == 0.28
    assert THRESHOLDS["ViT-B-32@openai"].calibrated and THRESHOLDS[MCLIP].calibrated
    assert not THRESHOLDS["ViT-B-32@laion2b_s34b_b79k"].calibrated  # provisional, said so


@pytest.mark.parametrize("reliable", [False, None])
def test_unreliable_language_never_gets_a_laxer_threshold(reliable):
    # "a red square" is labelled pcm by the detector: unreliable -> the strict value
    assert threshold_for(MCLIP, "pcm", reliable) == 0.28
    assert threshold_for(MCLIP, None, True) == 0.28
    for row in THRESHOLDS.values():
        for lang in ("en", "de", "pcm", "", None):
            assert threshold_for(row.model_id, lang, reliable) >= max([row.strict, *row.by_group.values()])


def test_unknown_model_and_bad_rows_are_config_errors():
    with pytest.raises(ConfigError, match="model_id='ViT-L-14@openai'.*laion_assets.core.clip.calibrate"):
        threshold_for("ViT-L-14@openai", "en", True)
    with pytest.raises(ConfigError, match=r"thresholds\[x\].other=0.3: must be in \[-1.0, 0.28\]"):
        ModelThresholds("x", 0.28, "t", multilingual=True, by_group={"other": 0.3})  # laxer only
    with pytest.raises(ConfigError, match="strict"):
        ModelThresholds("x", float("nan"), "t")
    with pytest.raises(ConfigError, match="multilingual"):
        ModelThresholds("x", 0.3, "t", by_group={"en": 0.2})


def test_sql_form_equals_threshold_for_on_every_combination():
    models = [*THRESHOLDS, "unknown@x"]
    langs = ["en", "EN_gb", "en-US", "de", "pcm", "zh-Hant", "", "  ", None]
    rows = list(itertools.product(models, langs, [True, False, None]))
    t = pa.table({"m": [r[0] for r in rows], "l": [r[1] for r in rows], "r": [r[2] for r in rows],
                  "fallback": [0.123] * len(rows)})
    with duckdb.connect() as con:
        con.register("t", t)
        got = con.sql(f"SELECT {threshold_sql('m', 'l', 'r', fallback_sql='fallback')} FROM t").fetchall()
        with pytest.raises(duckdb.Error, match="model_id=unknown@x: no similarity threshold"):
            con.sql(f"SELECT {threshold_sql('m', 'l', 'r')} FROM t").fetchall()
    for (m, lang, rel), (value,) in zip(rows, got):
        want = 0.123 if m == "unknown@x" else threshold_for(m, lang, rel)
        assert value == pytest.approx(want), (m, lang, rel)


def _write(tmp_path, model_id, rows):
    """rows: (key, caption_language, reliable, similarity, recorded threshold)."""
    pairs = [{"key": k, "url": f"http://i/{k}.jpg", "text": "a red square", "page_url": "http://p/", "crawl": "C",
              "warc_path": "w", "warc_offset": 0, "caption_language": lang, "caption_language_reliable": rel,
              "optout_page": False} for k, lang, rel, _, _ in rows]
    downloads = [{"key": k, "url": "u", "status": "ok", "width": 9, "height": 9, "sha256": "ab"} for k, *_ in rows]
    scores = [{"key": k, "status": "scored", "similarity": s, "threshold": thr, "model_id": model_id}
              for k, _, _, s, thr in rows]
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data, schema in [("pairs", pairs, PAIR_SCHEMA), ("downloads", downloads, DOWNLOAD_SCHEMA),
                               ("scores", scores, SCORE_SCHEMA)]:
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(data, schema=schema), paths[name])
    return filter_shard(paths["pairs"], paths["downloads"], paths["scores"], shard="00000")


def test_filter_applies_the_model_table_not_the_old_language_rule(tmp_path):
    # scored by an English-only model at 0.27 with recorded thresholds of the old rule (0.26 for
    # non-English labels): the model's table says 0.28, so none of these is kept
    rows = [("000000000", "pcm", False, 0.27, 0.26), ("000000001", "de", True, 0.27, 0.26),
            ("000000002", "en", True, 0.29, 0.28)]
    res = _write(tmp_path / "a", "laion-tiny@laion-tiny.pt", rows)
    assert res.table["key"].to_pylist() == ["000000002"]
    assert res.stats["dropped_below_threshold"] == 2
    assert res.table["threshold"].to_pylist() == [pytest.approx(0.28)]
    # a multilingual model: the reliable German caption gets 0.26, the unreliable pcm one does not
    res = _write(tmp_path / "b", MCLIP, rows)
    assert res.table["key"].to_pylist() == ["000000001", "000000002"]


def test_filter_fails_loudly_on_a_scored_row_without_any_threshold(tmp_path):
    with pytest.raises(duckdb.Error, match="model_id=nobody@x: no similarity threshold"):
        _write(tmp_path / "c", "nobody@x", [("000000000", "en", True, 0.9, None)])
