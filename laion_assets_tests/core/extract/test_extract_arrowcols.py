"""arrowcols builds the same tables as pa.table(columns, schema=...), nulls and empty columns included."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_assets.core.extract import arrowcols
from laion_assets.core.schemas.pairs import PAIR_ERROR_SCHEMA, PAIR_SCHEMA

_SCHEMA = pa.schema([pa.field("s", pa.string()), pa.field("i", pa.int64()), pa.field("f", pa.float32()),
                     pa.field("b", pa.bool_()), pa.field("d", pa.float64())])
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.tuples(
    st.lists(st.none() | _TEXT, min_size=n, max_size=n),
    st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n),
    st.lists(st.none() | st.floats(width=32, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.none() | st.booleans(), min_size=n, max_size=n),
    st.lists(st.none() | st.floats(allow_nan=False), min_size=n, max_size=n))))
def test_same_table_as_pa_table(cols):
    data = dict(zip("sifbd", cols))
    got, want = arrowcols.table(data, _SCHEMA), pa.table(data, schema=_SCHEMA)
    got.validate(full=True)
    assert got.schema == want.schema and got.equals(want)
    assert got.to_pylist() == want.to_pylist()


def test_pair_schemas_empty_and_full():
    for schema in (PAIR_SCHEMA, PAIR_ERROR_SCHEMA):
        empty = {f.name: [] for f in schema}
        assert arrowcols.table(empty, schema).equals(pa.table(empty, schema=schema))
    row = {"key": "000000000", "url": "https://a.example/x.jpg", "text": "a cat", "page_url": "https://a.example/",
           "crawl": "C", "warc_path": "w", "warc_offset": 12, "warc_record_id": None, "warc_date": "d",
           "page_title": None, "page_language": "en", "caption_language": "en", "caption_language_score": 0.75,
           "caption_language_reliable": True, "license": None, "optout_page": False, "optout_reasons": None,
           "in_main_content": None, "main_title": "T", "site_name": None}
    data = {k: [v] * 3 for k, v in row.items()}
    assert arrowcols.table(data, PAIR_SCHEMA).equals(pa.table(data, schema=PAIR_SCHEMA))


_ANY_TEXT = st.text(max_size=12)  # lone surrogates included: the fast paths must hand those to StringBuilder


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.none() | _ANY_TEXT, st.integers(1, 5)), max_size=12))
def test_runs_build_the_expanded_column(runs):
    """A column given as (value, count) runs (the page-level columns) is the column of its expansion,
    and the string fast path equals StringBuilder's array, surrogates (which raise in both) aside."""
    expanded = [v for v, k in runs for _ in range(k)]
    for typ in (pa.string(),):
        try:
            want = pa.array(expanded, typ)
        except (UnicodeEncodeError, pa.ArrowException):
            with pytest.raises((UnicodeEncodeError, pa.ArrowException)):
                arrowcols.column(arrowcols.Runs(runs), typ)
            with pytest.raises((UnicodeEncodeError, pa.ArrowException)):
                arrowcols.column(expanded, typ)
            continue
        for got in (arrowcols.column(arrowcols.Runs(runs), typ), arrowcols.column(expanded, typ)):
            got.validate(full=True)
            assert got.equals(want) and got.null_count == want.null_count


def test_runs_of_numbers_and_flags():
    runs = [(3, 2), (None, 1), (7, 3)]
    assert arrowcols.column(arrowcols.Runs(runs), pa.int64()).equals(pa.array([3, 3, None, 7, 7, 7], pa.int64()))
    assert arrowcols.column(arrowcols.Runs([(True, 2), (False, 1)]), pa.bool_()).equals(pa.array([True, True, False]))


@pytest.mark.parametrize("n", [0, 1, 9, 10, 1234, 100_001])
def test_keys_are_the_zero_padded_row_numbers(n):
    got = arrowcols.keys(n)
    got.validate(full=True)
    assert got.equals(pa.array([f"{i:09d}" for i in range(n)], pa.string()))


def test_all_null_and_non_ascii_string_columns():
    for values in ([None] * 5, ["é", None, "", "日本語", "a"], ["x" * 3, "ÿ"]):
        got = arrowcols.column(values, pa.string())
        got.validate(full=True)
        assert got.equals(pa.array(values, pa.string())) and got.null_count == values.count(None)
