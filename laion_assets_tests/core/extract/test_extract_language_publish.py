"""The published language (filtered `language`, release `LANGUAGE`) is the caption's language only where
the extractor flagged it reliable: an unreliable label (`fy` for "Search") is no language (nolang)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.filter.shard import FilterConfig, filter_shard
from laion_assets.core.schemas import DOWNLOAD_SCHEMA, PAIR_SCHEMA, SCORE_SCHEMA
from laion_assets_tests.core.extract._extract_warcgen import build, page


def test_only_reliable_languages_are_published(tmp_path):
    html = ('<img src="/a.jpg" alt="Search">'
            '<img src="/b.jpg" alt="Ein kleiner Hund spielt im Garten mit einem roten Ball">'
            '<img src="/c.jpg" alt="A small dog plays in the garden with a red ball">')
    data = build([page("https://p.example/", html)])
    (tmp_path / "x.warc.gz").write_bytes(data)
    pairs = extract_shard([str(tmp_path / "x.warc.gz")], crawl="C", config=ExtractConfig()).table
    reliable = dict(zip(pairs["text"].to_pylist(), pairs["caption_language_reliable"].to_pylist()))
    assert reliable == {"Search": False, "Ein kleiner Hund spielt im Garten mit einem roten Ball": True,
                        "A small dog plays in the garden with a red ball": True}
    keys = pairs["key"].to_pylist()
    downloads = pa.Table.from_pylist([{"key": k, "url": "u", "status": "ok", "width": 9, "height": 9, "sha256": "ab"}
                                      for k in keys], schema=DOWNLOAD_SCHEMA)
    scores = pa.Table.from_pylist([{"key": k, "status": "scored", "similarity": 0.9, "threshold": 0.28,
                                    "model_id": "laion-tiny@laion-tiny.pt"} for k in keys], schema=SCORE_SCHEMA)
    paths = {}
    for name, t in (("pairs", pairs), ("downloads", downloads), ("scores", scores)):
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(t, paths[name])
    res = filter_shard(paths["pairs"], paths["downloads"], paths["scores"], shard="00000", config=FilterConfig())
    got = dict(zip(res.table["text"].to_pylist(), res.table["language"].to_pylist()))
    assert got == {"Search": None, "Ein kleiner Hund spielt im Garten mit einem roten Ball": "de",
                   "A small dog plays in the garden with a red ball": "en"}
    assert PAIR_SCHEMA.field("caption_language").nullable
