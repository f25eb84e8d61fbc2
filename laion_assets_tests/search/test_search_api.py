"""The JSON API on the demo's release with the tiny model: text queries, "find my images" by CLIP and
PDQ, removal requests through the takedown path's own loader, and the safety defaults."""

from __future__ import annotations

import io
import json
import re
import uuid

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, load_removal_list, matches_sql, pdq_distance, sources_in_dir
from laion_assets.core.removal.receipts import PENDING, receipt_path
from laion_assets.core.removal.requests import read_request
from laion_assets.core.search.build import release_rows

pytestmark = pytest.mark.e2e
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange")
SHAPES = ("square", "circle", "triangle", "star", "cross", "ring")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _original(served, url: str) -> bytes:
    """The image as the (sample) web server published it: what a rights holder has on disk."""
    name = url.rsplit("/", 1)[-1]
    (path,) = served.root.glob(f"sample-crawl/*/images/img/{name}")
    return path.read_bytes()


def _multipart(data: bytes, filename: str = "upload.jpg") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("colour,shape", [("red", "square"), ("blue", "star"), ("green", "triangle")])
@pytest.mark.parametrize("index", ["image", "text"])
def test_text_query_returns_rows_with_that_caption_first(served, colour, shape, index):
    rows = release_rows(served.st, "sample", served.service.release("sample").version).to_pylist()
    expected = {r["SAMPLE_ID"] for r in rows if {colour, shape} <= _words(r["TEXT"])}
    assert expected, f"the sample holds a {colour} {shape}"
    status, out = served.get_json(f"/api/search?q=a+{colour}+{shape}&k={len(rows)}&release=sample&index={index}")
    assert status == 200 and len(out) == len(rows)
    assert {r["SAMPLE_ID"] for r in out[: len(expected)]} == expected
    assert [r["similarity"] for r in out] == sorted((r["similarity"] for r in out), reverse=True)
    first = out[0]
    for key in ("SAMPLE_ID", "URL", "TEXT", "similarity", "score", "release", "version", "warc_path", "warc_offset"):
        assert key in first
    assert first["release"] == "sample" and first["version"] == served.service.release("sample").version
    by_id = {r["SAMPLE_ID"]: r for r in rows}
    assert first["score"] == pytest.approx(by_id[first["SAMPLE_ID"]]["similarity"])
    assert first["warc_offset"] == by_id[first["SAMPLE_ID"]]["warc_offset"]


def test_filters_and_bad_requests(served):
    _, every = served.get_json("/api/search?q=a+red+square&k=500")
    want = [r["SAMPLE_ID"] for r in every if r["LANGUAGE"] == "en" and r["NSFW"] in ("UNLIKELY", "UNSURE")
            and r["similarity"] >= 0.05]
    status, out = served.get_json("/api/search?q=a+red+square&k=500&lang=en&nsfw=UNLIKELY,UNSURE&min_similarity=0.05")
    assert status == 200 and 0 < len(want) < len(every)
    assert [r["SAMPLE_ID"] for r in out] == want
    _, top = served.get_json("/api/search?q=a+red+square&k=2&lang=en")
    assert [r["SAMPLE_ID"] for r in top] == [r["SAMPLE_ID"] for r in every if r["LANGUAGE"] == "en"][:2]
    assert served.get_json("/api/search?k=5")[0] == 400
    assert served.get_json("/api/search?q=x&k=0")[0] == 400
    status, err = served.get_json("/api/search?q=x&release=nope")
    assert status == 404 and "sample" in err["releases"]
    status, err = served.post("/api/search", b"this is not an image", "application/octet-stream")
    assert status == 400 and "not a readable image" in err["error"]


@pytest.mark.parametrize("how", ["jpeg-small", "png", "raw-body"])
def test_uploaded_reencoded_copy_finds_its_row_by_pdq(served, how):
    rel = served.service.release("sample")
    meta = rel.meta.to_pylist()
    # By file name, not SAMPLE_ID order (which follows the sample server's random port): the same row every session.
    row = min((r for r in meta if "cross" in r["TEXT"]), key=lambda r: r["URL"].rsplit("/", 1)[-1])
    im = Image.open(io.BytesIO(_original(served, row["URL"]))).convert("RGB")
    buf = io.BytesIO()
    if how == "png":
        im.save(buf, "PNG")
    else:
        im.resize((173, 173), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=55)
    data = buf.getvalue()
    if how == "raw-body":
        status, out = served.post("/api/search?k=5", data, "image/jpeg")
    else:
        status, out = served.post("/api/search?k=5", *_multipart(data))
    assert status == 200, out
    copies = {r["SAMPLE_ID"]: r["pdq_distance"] for r in out["pdq_matches"]}
    assert row["SAMPLE_ID"] in copies
    # Exactly the rows within the takedown threshold, as core/removal/entries.py measures distance.
    want = {r["SAMPLE_ID"] for r in meta if r["pdq"] and r["pdq_quality"] >= 50
            and pdq_distance(r["pdq"], out["query_pdq"]) <= PDQ_MAX_DISTANCE}
    assert set(copies) == want and all(d <= PDQ_MAX_DISTANCE for d in copies.values())
    assert len(want) < len(meta)
    assert out["nearest"][0]["SAMPLE_ID"] == row["SAMPLE_ID"]


def test_removal_filed_through_the_api_is_a_valid_request_that_matches_the_row(served):
    rel = served.service.release("sample")
    row = next(r for r in rel.meta.to_pylist() if "blue" in r["TEXT"])
    status, first = served.get(f"/thumb/sample/{row['SAMPLE_ID']}")[:2], None
    assert status[0] == 200
    body = json.dumps({"release": "sample", "SAMPLE_ID": str(row["SAMPLE_ID"]),
                       "reason": "my photo, no licence", "contact": "artist@example.org"}).encode()
    status, out = served.post("/api/removal", body, "application/json")
    assert status == 201, out
    assert re.fullmatch(r"rq-[0-9a-f]{16}", out["request_id"])
    path = served.root / out["file"]
    assert path.is_file() and row["URL"] not in path.read_text()
    # The id is the takedown path's receipt id, and the pending receipt exists.
    assert out["request_id"] == read_request(path.name, str(path), path.read_bytes()).request_id
    assert json.loads((served.root / receipt_path(out["request_id"])).read_text())["status"] == PENDING

    # The takedown path's own loader accepts it and its entries match the row (and only rows
    # sharing its URL or image bytes) in the release.
    entries, rejected = load_removal_list(sources_in_dir(served.root / "removal" / "requests"))
    assert rejected.num_rows == 0 and sorted(entries.column("kind").to_pylist()) == ["image_sha256", "url_sha256"]
    parts = sorted((served.root / "releases" / "sample" / rel.version).glob("part-*.parquet"))
    with duckdb.connect() as con:
        con.register("entries", entries)
        con.register("release", pq.read_table(parts))
        con.execute("CREATE VIEW r AS SELECT *, NULL::VARCHAR AS md5, NULL::VARCHAR AS sha1, NULL::VARCHAR AS pdq, "
                    "NULL::INTEGER AS pdq_quality FROM release")
        matched = {x[0] for x in con.sql(f"SELECT DISTINCT SAMPLE_ID FROM ({matches_sql('r', 'entries')})").fetchall()}
        same = {x[0] for x in con.sql(f"SELECT SAMPLE_ID FROM release WHERE URL = '{row['URL']}' "
                                      f"OR sha256 = '{row['sha256']}'").fetchall()}
    assert matched == same and row["SAMPLE_ID"] in matched

    # Filing it again is the same request; a request without a reason is refused, nothing written.
    assert served.post("/api/removal", body, "application/json")[1]["request_id"] == out["request_id"]
    bad = json.dumps({"release": "sample", "SAMPLE_ID": str(row["SAMPLE_ID"]), "reason": " ", "contact": "x"}).encode()
    status, err = served.post("/api/removal", bad, "application/json")
    assert status == 400 and "reason" in err["error"]
    assert len(list((served.root / "removal" / "requests").iterdir())) == 1

    # From now on the row is on the removal list: no thumbnail, in no result.
    assert served.get(f"/thumb/sample/{row['SAMPLE_ID']}")[0] == 410
    _, found = served.get_json(f"/api/search?q={row['TEXT'].replace(' ', '+')}&k=50")
    assert row["SAMPLE_ID"] not in {r["SAMPLE_ID"] for r in found}
    _, rels = served.get_json("/api/releases")
    assert rels[0]["hidden_rows"] == len(matched)


def test_flagged_rows_are_blurred_unless_opted_in(served):
    rel = served.service.release("sample")
    status, out = served.get_json("/api/search?q=a+shape&k=50")
    flagged = [r for r in out if r["NSFW"] == "NSFW" or (r["punsafe"] or 0) > served.service.blur_punsafe_over]
    clean = [r for r in out if r not in flagged]
    assert flagged and clean and all(r["blur"] for r in flagged) and not any(r["blur"] for r in clean)
    sid = flagged[0]["SAMPLE_ID"]
    blurred = Image.open(io.BytesIO(served.get(f"/thumb/sample/{sid}")[1])).convert("L")
    sharp = Image.open(io.BytesIO(served.get(f"/thumb/sample/{sid}?unblur=1")[1])).convert("L")
    edges = lambda im: sum(abs(a - b) for a, b in zip(im.tobytes(), im.tobytes()[1:]))  # noqa: E731
    assert edges(blurred) < 0.5 * edges(sharp)
    clean_id = clean[0]["SAMPLE_ID"]
    assert served.get(f"/thumb/sample/{clean_id}")[1] == served.get(f"/thumb/sample/{clean_id}?unblur=1")[1]
    assert rel is served.service.release(None)
