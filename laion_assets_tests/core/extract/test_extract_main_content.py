"""trafilatura's signals behind ExtractConfig.main_content_signals (issue 22): in_main_content per row,
main_title and site_name per page; off by default (nulls, same rows), on real and generated pages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets.core.schemas.pairs import PAIR_SCHEMA

from ._extract_warcgen import build, page

REAL = Path(os.environ.get("LAION_REAL_WARC_DIR") or Path(__file__).resolve().parents[4] / "shared" / "data" / "real-warc")
ON = ExtractConfig(main_content_signals=True)

ARTICLE = """<!doctype html><html lang="en"><head><title>Otters of the Thames | River Notes</title>
<meta property="og:site_name" content="River Notes"></head><body>
<header><a href="/"><img src="/static/logo.png" alt="River Notes logo"></a>
<nav><a href="/a">Archive</a> <a href="/b">About</a></nav></header>
<aside class="sidebar advert"><img src="https://ads.example.net/banner-123.jpg" alt="Buy cheap boats now"></aside>
<main><article><h1>Otters of the Thames</h1>
<p>The otter population of the river has grown for ten years in a row, the survey says. Volunteers counted
holts from the estuary to the source and found families in places where none had been seen for decades.</p>
<figure><img src="/img/otter-family.jpg" alt="An otter family on the river bank at dawn">
<figcaption>An otter family near Oxford.</figcaption></figure>
<p>Water quality is the main reason, the authors say: fish came back first, and the otters followed them.
The survey will be repeated next spring with more volunteers and more stretches of the river.</p>
<p>Readers who see an otter can report it on the survey's site, with the place, the time and a photo.</p>
</article></main>
<footer><img src="/static/footer-badge.png" alt="Member of the press council"><p>Copyright River Notes</p></footer>
</body></html>"""


def _shard(tmp_path, html: str, config: ExtractConfig, name: str = "a.warc.gz"):
    p = tmp_path / name
    p.write_bytes(build([page("https://rivernotes.example/2024/otters.html", html)]))
    return extract_shard([str(p)], crawl="CC-MAIN-2024-22", config=config)


def test_article_image_is_main_content_and_boilerplate_is_not(tmp_path):
    r = _shard(tmp_path, ARTICLE, ON)
    by_url = {row["url"]: row for row in r.table.to_pylist()}
    assert by_url["https://rivernotes.example/img/otter-family.jpg"]["in_main_content"] is True
    for boiler in ("https://rivernotes.example/static/logo.png", "https://ads.example.net/banner-123.jpg",
                   "https://rivernotes.example/static/footer-badge.png"):
        assert by_url[boiler]["in_main_content"] is False, boiler
    row = by_url["https://rivernotes.example/img/otter-family.jpg"]
    assert row["site_name"] == "River Notes"
    assert row["main_title"] == "Otters of the Thames"  # trafilatura's title: no " | River Notes" suffix
    assert row["page_title"] == "Otters of the Thames | River Notes"  # the tag scan's <title> is kept as is
    assert r.stats["pages_main_content_checked"] == 1 and r.stats["main_content_errors"] == 0
    assert r.table.schema == PAIR_SCHEMA


def test_off_by_default_gives_nulls_and_the_same_rows(tmp_path):
    off = _shard(tmp_path, ARTICLE, ExtractConfig(), "off.warc.gz")
    on = _shard(tmp_path, ARTICLE, ON, "on.warc.gz")
    for col in ("in_main_content", "main_title", "site_name"):
        assert off.table.column(col).null_count == off.table.num_rows
    same = [c for c in PAIR_SCHEMA.names if c not in ("in_main_content", "main_title", "site_name", "warc_path", "warc_record_id")]
    assert off.table.select(same).equals(on.table.select(same))
    assert off.stats["pages_main_content_checked"] == 0


def test_page_over_the_size_cap_keeps_nulls_and_is_counted(tmp_path):
    r = _shard(tmp_path, ARTICLE, ExtractConfig(main_content_signals=True, main_content_max_html_chars=100))
    assert r.table.num_rows == 4 and r.table.column("in_main_content").null_count == 4
    assert r.stats["main_content_errors"] == 1


def test_pages_without_pairs_are_not_given_to_trafilatura(tmp_path):
    r = _shard(tmp_path, "<html><body><p>" + "text " * 200 + "</p><img src=a.jpg></body></html>", ON)
    assert r.table.num_rows == 0 and r.stats["pages_main_content_checked"] == 0


@pytest.mark.parametrize("name", ["wget-2024-dolma-0000.warc.gz", "wget-2024-dolma-0001.warc.gz",
                                  "cc-2024-22-whirlwind.warc.gz"])
def test_real_pages(name):
    """Real pages: both answers occur, footer badges are outside, every checked row has a site name."""
    if not (REAL / name).exists():
        pytest.skip(f"{REAL / name} is absent (../shared/data/real-warc beside the checkout)")
    on = extract_shard([str(REAL / name)], crawl="X", config=ON)
    off = extract_shard([str(REAL / name)], crawl="X")
    assert on.table.num_rows == off.table.num_rows > 0
    rows = on.table.to_pylist()
    flags = [r["in_main_content"] for r in rows]
    assert True in flags and False in flags
    for r in rows:
        if "poweredby_mediawiki" in r["url"] or "wikimedia-button" in r["url"]:
            assert r["in_main_content"] is False
        if r["in_main_content"] is not None:
            assert r["site_name"]
    assert on.stats["pages_main_content_checked"] >= 1 and on.stats["main_content_errors"] == 0


def test_hostile_page_is_bounded_by_the_size_cap(tmp_path):
    """30,000 images in 1.9 M characters: trafilatura is not run (it took ~5 s CPU on it), rows are kept."""
    html = "<html><body>" + "".join(f'<p>text {i} <img src="/i{i}.jpg" alt="image number {i}"></p>' for i in range(30000))
    r = _shard(tmp_path, html + "</body></html>", ON)
    assert r.table.num_rows == 2000  # max_page_rows
    assert r.stats["main_content_errors"] == 1 and r.table.column("in_main_content").null_count == 2000
