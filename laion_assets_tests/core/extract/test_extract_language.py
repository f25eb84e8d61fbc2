"""language.detect_many (batched, numpy) against py3langid's own LanguageIdentifier.classify.

detect_many walks py3langid's byte DFA for all texts at once and sums the naive-Bayes rows per text
in numpy; only the float32 summation order of those rows differs from py3langid's matmul. So:
probabilities within PROB_TOL, and a label may differ only where py3langid's own two best languages
are within LABEL_TIE of each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laion_assets_tests.core.extract._extract_warcgen import real_warc_dir
from laion_assets.core.extract import ExtractConfig, extract_shard, language
from laion_assets.core.extract.htmlscan import decode_html, scan_html
from laion_assets.core.extract.warc import BadRecord, iter_records

REAL = real_warc_dir()
PROB_TOL = 1e-4
LABEL_TIE = 1e-4


def assert_same_as_py3langid(texts: list[str]) -> None:
    ident = language._identifier()
    got = language.detect_many(texts)
    assert len(got) == len(texts)
    for text, (lang, prob) in zip(texts, got):
        ref_lang, ref_prob = ident.classify(text)
        assert isinstance(prob, float)
        assert abs(prob - ref_prob) <= PROB_TOL, (text, lang, prob, ref_lang, ref_prob)
        if lang != ref_lang:
            ranked = ident.rank(text)
            assert ranked[0][1] - ranked[1][1] <= LABEL_TIE, (text, lang, ref_lang, ranked[:2])


def test_empty_batch_and_featureless_texts():
    assert language.detect_many([]) == []
    assert_same_as_py3langid(["", " ", "\x00", "12345", "!!!", "a"])


def test_batch_does_not_change_a_texts_result():
    # chunks are cut between texts, so each text's score is the same alone or in any batch
    texts = ["a photo of a cat", "ein Foto einer Katze", "", "猫の写真", "фото кошки " * 300, "x" * 5000,
             "une photo d'un chat"] * 3
    batch = language.detect_many(texts)
    assert batch == [language.detect_many([t])[0] for t in texts]
    assert batch == language.detect_many(texts[::-1])[::-1]


def test_long_texts_take_the_python_tail():
    # a few texts far longer than the rest: the last bytes are walked one text at a time
    texts = ["short one", "a bit longer caption here"] * 20 + ["Ein sehr langer deutscher Satz. " * 60,
                                                                 "Очень длинное предложение. " * 70]
    assert_same_as_py3langid(texts)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real WARC folder {REAL} not present (shared test data)")
def test_every_real_warc_caption_and_alt():
    texts: list[str] = []
    for path in sorted(REAL.glob("*.warc.gz")):
        # the captions the shard keeps ...
        r = extract_shard([str(path)], crawl="T", config=ExtractConfig(detect_caption_language=False))
        texts += r.table.column("text").to_pylist()
        # ... and every raw alt attribute and title, uncleaned
        with open(path, "rb") as f:
            for rec in iter_records(f, 1 << 26):
                if isinstance(rec, BadRecord) or rec.type != "response":
                    continue
                body = rec.block.split(b"\r\n\r\n", 1)[-1]
                text, codec = decode_html(body, None)
                scan = scan_html(text, body, codec)
                texts += [a["alt"] for a in scan.imgs if a is not None and a.get("alt") is not None]
                if scan.title:
                    texts.append(scan.title)
    assert len(texts) > 1000
    assert_same_as_py3langid(texts)
    # and the shard's columns are detect_many's
    r = extract_shard([str(p) for p in sorted(REAL.glob("*.warc.gz"))], crawl="T")
    t = r.table.to_pydict()
    want = language.detect_many(t["text"])
    assert t["caption_language"] == [lang for lang, _ in want]
    assert t["caption_language_score"] == pytest.approx([p for _, p in want], abs=1e-7)


_SCRIPTS = st.sampled_from([
    "abcdefghijklmnopqrstuvwxyz ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ ", "äöüßéèêàçñ ", "абвгдежзийклмнопрстуфхцчшщыэюя ",
    "αβγδεζηθικλμνξοπρστυφχψω ", "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年 ",
    "あいうえおかきくけこさしすせそアイウエオカキクケコ ", "가나다라마바사아자차카타파하 ", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي ",
    "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह ", "0123456789.,;:!?-()'\" ", "\u0301\u0308\u200d\ufeff\t\n",
])
_MIXED = st.lists(st.tuples(_SCRIPTS, st.integers(1, 40)), min_size=1, max_size=8).flatmap(
    lambda parts: st.tuples(*[st.text(alphabet, min_size=k, max_size=k) for alphabet, k in parts])
).map("".join)
# any code point; lone surrogates too (py3langid encodes with surrogatepass)
_ANY = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=200)
_TEXT = st.one_of(
    _ANY,
    _ANY.map(str.upper),
    _MIXED,
    _MIXED.map(str.upper),
    st.text("abcdefghij klmnopqrstuvwxyzабвгд的一是", min_size=500, max_size=2000),
    st.just(""),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_TEXT, min_size=1, max_size=30))
def test_detect_many_matches_py3langid(texts):
    assert_same_as_py3langid(texts)


@pytest.mark.parametrize("native", [True, False], ids=["c", "numpy"])
@pytest.mark.parametrize("seed", range(4))
def test_segment_sums_are_reduceat_bit_for_bit(seed, native):
    """detect_many's feature-row sums equal np.add.reduceat's (the implementation they replaced) bit for
    bit, for segments of every length class (1, < 8, <= 128, > 128 and > 256 rows: the pairwise splits),
    in C (`_langsum`) and in numpy."""
    import numpy as np

    from laion_assets.core.extract import language

    if native and not language.native_sums_built():
        pytest.fail("the C language sums (_langsum) are not built: run scripts/install.sh (needs a C compiler)")
    before = language.use_native_sums(native)
    try:
        _check_segment_sums(seed)
    finally:
        language.use_native_sums(before)


def _check_segment_sums(seed):
    import numpy as np

    from laion_assets.core.extract import language

    rng = np.random.default_rng(seed)
    ptc = rng.standard_normal((5000, 142)).astype(np.float32) * np.float32(3.0)
    lens = np.concatenate([rng.integers(1, 9, 300), rng.integers(9, 130, 60), rng.integers(130, 700, 12), [1, 8, 9, 129, 257, 1000]])
    rng.shuffle(lens)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    feat = rng.integers(0, len(ptc), int(lens.sum()))
    weight = np.log1p(rng.integers(1, 4, len(feat)).astype(np.float32))
    rows = ptc[feat]
    rows *= weight[:, None]
    want = np.add.reduceat(rows, starts, axis=0)
    got = language._segment_sums(ptc, feat, weight, starts)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.uint32), want.view(np.uint32))
