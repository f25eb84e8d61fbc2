"""The page in a real browser: headless Chromium (Debian's, scripts/install_browser.sh) driven by
Playwright, against the real service on the published sample."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from laion_assets.core.download.resizer import pdq_hash
from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, load_removal_list, pdq_distance, sources_in_dir
from laion_assets.core.removal.receipts import PENDING, receipt_path
from laion_assets.core.removal.requests import read_request

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("LAION_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "search.png"


@pytest.fixture
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.requested = []
        pg.on("request", lambda r: pg.requested.append(r.url))
        pg.goto(served.base + "/")
        try:
            yield pg
        finally:
            browser.close()


def _until(page, js: str, timeout_s: float = 20.0) -> None:
    """Poll a JS expression from Python (page.wait_for_function's polling needs eval, which the
    page's Content-Security-Policy forbids)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"timed out waiting for {js}"
        page.wait_for_timeout(100)


def _loopback_only(page, served) -> None:
    hosts = {urlsplit(u).netloc for u in page.requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(served.base).netloc}, hosts


def test_text_search_shows_thumbnails_from_the_tars_and_files_a_removal(page, served):
    page.fill("#text", "a red square")
    page.click("#go")
    page.wait_for_selector(".card")
    first = page.locator(".card").first
    assert "red square" in first.locator(".cap").inner_text()
    assert "similarity" in first.inner_text() and "SAMPLE-CRAWL" in first.inner_text()
    _until(page, "[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    shown = page.eval_on_selector_all(".card img", "els => els.map(e => e.getAttribute('src'))")
    assert shown and all(s.startswith("/thumb/sample/") for s in shown)
    if os.environ.get("LAION_SEARCH_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

    sample_id = first.get_attribute("data-sample-id")
    first.locator(".rm-open").click()
    first.locator("textarea[name=reason]").fill("this is my photograph")
    first.locator("input[name=contact]").fill("owner@example.org")
    first.locator(".rm-send").click()
    receipt = first.locator(".receipt")
    receipt.wait_for()
    rid = receipt.inner_text().rsplit(" ", 1)[-1]
    assert rid.startswith("rq-") and first.locator("img").count() == 0
    (request,) = (served.root / "removal" / "requests").iterdir()
    # The id shown is the takedown path's receipt id of the filed file, and its receipt is there.
    assert rid == read_request(request.name, str(request), request.read_bytes()).request_id
    receipt = json.loads((served.root / receipt_path(rid)).read_text())
    assert receipt["request_id"] == rid and receipt["status"] == PENDING and receipt["file"] == request.name
    entries, rejected = load_removal_list(sources_in_dir(request.parent))
    assert rejected.num_rows == 0 and entries.num_rows >= 1

    # Searched again: the removed row is gone from the grid.
    page.click("#go")
    _until(page, f"!document.querySelector('.card[data-sample-id=\"{sample_id}\"]') && "
                           "document.querySelectorAll('.card').length > 0")
    _loopback_only(page, served)


def test_upload_finds_copies_by_pdq(page, served, tmp_path):
    meta = served.service.release("sample").meta.to_pylist()
    # The row is picked by its image's file name, never by SAMPLE_ID order: SAMPLE_ID hashes the URL,
    # which holds the sample server's random port, so "the first star row" was another image in each
    # session, and one of them (0043-green-star) is at PDQ distance 32 from this copy (> 31).
    row = min((r for r in meta if "star" in r["TEXT"] and r["pdq_quality"] >= 50), key=lambda r: r["URL"].rsplit("/", 1)[-1])
    (orig,) = served.root.glob(f"sample-crawl/*/images/img/{row['URL'].rsplit('/', 1)[-1]}")
    copy = tmp_path / "mine.jpg"
    Image.open(orig).convert("RGB").resize((200, 200)).save(copy, "JPEG", quality=75)  # resized, re-encoded
    query_pdq, _ = pdq_hash(Image.open(copy).convert("RGB"))
    want = {str(r["SAMPLE_ID"]) for r in meta if r["pdq"] and r["pdq_quality"] >= 50
            and pdq_distance(query_pdq, r["pdq"]) <= PDQ_MAX_DISTANCE}
    assert str(row["SAMPLE_ID"]) in want, "the copy is too far from its original for PDQ: pick a gentler copy"
    page.set_input_files("#file", str(copy))
    page.click("#upgo")
    page.wait_for_selector("#pdqgrid .card")  # the grid fills after the box text: wait for its cards
    assert "cop(ies) by PDQ" in page.locator("#pdqbox").inner_text(), page.locator("#status").inner_text()
    ids = page.eval_on_selector_all("#pdqgrid .card", "els => els.map(e => e.dataset.sampleId)")
    assert set(ids) == want and len(ids) == len(want)  # every copy within the threshold, nothing else
    assert "PDQ copy, distance" in page.locator("#pdqgrid").inner_text()
    _loopback_only(page, served)


def test_filters_and_blur_opt_in(page, served):
    page.select_option("#lang", "en")
    page.uncheck(".nsfw[value=NSFW]")
    page.fill("#text", "a shape")
    page.fill("#k", "50")
    page.click("#go")
    page.wait_for_selector(".card")
    metas = page.eval_on_selector_all(".card", "els => els.map(e => e.innerText)")
    assert metas and not any("NSFW NSFW" in m for m in metas)
    blurred = page.eval_on_selector_all(".card img[alt='flagged image (blurred)']", "els => els.map(e => e.src)")
    assert blurred and not any("unblur=1" in s for s in blurred)
    page.check("#unblur")
    page.click("#go")
    page.wait_for_selector(".card img[src*='unblur=1']")
    _loopback_only(page, served)
    assert Image.open(io.BytesIO(served.get(urlsplit(blurred[0]).path)[1])).size[0] > 0
