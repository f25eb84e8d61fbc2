"""arrowcols builds the same tables as pa.table(columns, schema=...), nulls and empty columns included."""

from __future__ import annotations

import pyarrow as pa
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
