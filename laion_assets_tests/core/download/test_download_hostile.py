"""download_shard against a real, hostile HTTP server on 127.0.0.1: every misbehaviour must end in
a status row with the right reason, in bounded time and memory."""

from __future__ import annotations

import io
import resource
import struct
import threading
import time
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.download import DownloadConfig, download_shard, list_tar_members
from laion_assets.core.download.checks import CHECKS
from laion_assets.core.checks import run_checks
from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA
from laion_assets.testing.http_server import TestServer, make_jpeg, send, static

JPG = make_jpeg(640, 480, seed=1)
TINY = make_jpeg(16, 16, seed=2)
TOKEN = "laion-assets"
ROBOTS = f"""
User-agent: {TOKEN}
Disallow: /disallowed/

User-agent: img2dataset
Disallow: /alias-blocked/

User-agent: *
Disallow: /everyone-else/
""".encode()
TDMREP = b'[{"location": "/tdm/*", "tdm-reservation": 1}, {"location": "/*", "tdm-reservation": 0}]'


def png_bytes(w: int, h: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((w, h), 60).convert(mode).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(side: int = 30000) -> bytes:
    """A real 1-bit PNG of side x side zero pixels: ~100 KB on the wire, ~900 MB if decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def drip(handler) -> None:
    """Slowloris: headers promise 100 kB, then one byte every 0.2 s."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for i in range(300):
        handler.wfile.write(JPG[i : i + 1])
        handler.wfile.flush()
        time.sleep(0.2)


def endless(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = JPG[:65536]
    for _ in range(4000):  # 256 MB at most, the client must stop long before
        handler.wfile.write(chunk)
    handler.close_connection = True


def lying_length(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", str(len(JPG) + 50_000))
    handler.end_headers()
    handler.wfile.write(JPG)
    handler.wfile.flush()
    handler.close_connection = True


def redirect(location: str):
    return static(b"", None, 302, {"Location": location})


HTML = b"<!doctype html><html><body>" + b"<p>not an image</p>" * 400 + b"</body></html>"

ROUTES = {
    "/robots.txt": static(ROBOTS, "text/plain"),
    "/.well-known/tdmrep.json": static(TDMREP, "application/json"),
    "/ok.jpg": static(JPG),
    "/ok.png": static(png_bytes(300, 200, "RGBA"), "image/png"),
    "/no-ctype.jpg": static(JPG, None),
    "/slow.jpg": drip,
    "/endless.jpg": endless,
    "/declared-huge.jpg": static(JPG, "image/jpeg", 200, {"X-Pad": "1"}),
    "/lying.jpg": lying_length,
    "/wrong-ctype.jpg": static(JPG, "text/plain"),
    "/html": static(HTML, "text/html; charset=utf-8"),
    "/html-as-jpeg.jpg": static(HTML, "image/jpeg"),
    "/png-as-jpeg.jpg": static(png_bytes(200, 200), "image/jpeg"),
    "/loop": redirect("/loop"),
    "/to-private": redirect("http://10.0.0.1/x.jpg"),
    "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
    "/redirect-ok": redirect("/ok.jpg"),
    "/disallowed/a.jpg": static(JPG),
    "/alias-blocked/a.jpg": static(JPG),
    "/everyone-else/a.jpg": static(JPG),
    "/xrt-noai.jpg": static(JPG, headers={"X-Robots-Tag": "noai"}),
    "/xrt-scoped.jpg": static(JPG, headers={"X-Robots-Tag": f"{TOKEN}: noimageai, nofollow"}),
    "/xrt-other.jpg": static(JPG, headers={"X-Robots-Tag": "otherbot: noai"}),
    "/tdm-header.jpg": static(JPG, headers={"tdm-reservation": "1"}),
    "/tdm/a.jpg": static(JPG),
    "/bomb.png": static(bomb_png(), "image/png"),
    "/truncated.jpg": static(make_jpeg(1600, 1200, seed=3)[:40_000]),
    "/tiny.jpg": static(TINY),
    "/server-error.jpg": static(b"oops", "text/plain", 500),
    "/page-optout.jpg": static(JPG),
}


def declared_huge(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", str(500 * 1024 * 1024))
    handler.end_headers()
    handler.close_connection = True


ROUTES["/declared-huge.jpg"] = declared_huge

EXPECTED = {
    "/ok.jpg": ("ok", None),
    "/ok.png": ("ok", None),
    "/no-ctype.jpg": ("ok", None),
    "/redirect-ok": ("ok", None),
    "/xrt-other.jpg": ("ok", None),
    "/everyone-else/a.jpg": ("ok", None),  # our own group applies, not `*`
    "/slow.jpg": ("failed", "timeout"),
    "/endless.jpg": ("skipped", "too_large"),
    "/declared-huge.jpg": ("skipped", "too_large"),
    "/lying.jpg": ("failed", "incomplete_body"),
    "/wrong-ctype.jpg": ("skipped", "unsupported_content_type"),
    "/html": ("skipped", "unsupported_content_type"),
    "/html-as-jpeg.jpg": ("skipped", "not_an_image"),
    "/png-as-jpeg.jpg": ("skipped", "unsupported_content_type"),
    "/loop": ("failed", "too_many_redirects"),
    "/to-private": ("skipped", "blocked_address"),
    "/to-metadata": ("skipped", "blocked_address"),
    "/disallowed/a.jpg": ("skipped", "robots_txt"),
    "/alias-blocked/a.jpg": ("skipped", "robots_txt"),
    "/xrt-noai.jpg": ("skipped", "x_robots_tag"),
    "/xrt-scoped.jpg": ("skipped", "x_robots_tag"),
    "/tdm-header.jpg": ("skipped", "tdm_reservation"),
    "/tdm/a.jpg": ("skipped", "tdm_reservation"),
    "/bomb.png": ("skipped", "decompression_bomb"),
    "/truncated.jpg": ("skipped", "decode_error"),
    "/tiny.jpg": ("skipped", "too_small"),
    "/server-error.jpg": ("failed", "http_error"),
    "/missing.jpg": ("failed", "http_error"),
    "/page-optout.jpg": ("skipped", "page_optout"),
}

FAST = dict(
    allow_private_hosts=("127.0.0.1",), connect_timeout_s=2.0, read_timeout_s=1.0,
    total_timeout_s=2.5, max_bytes=2_000_000, retries=0, backoff_base_s=0.05,
    concurrency=16, per_host_concurrency=8, shard_timeout_s=40.0, image_size=64,
)


def make_pairs(urls: list[str], optout: list[bool] | None = None) -> pa.Table:
    n = len(urls)
    return pa.table({
        "key": [f"{i:09d}" for i in range(n)],
        "url": urls,
        "text": [f"caption {i}" for i in range(n)],
        "page_url": ["http://example.com/page"] * n,
        "optout_page": optout or [False] * n,
        "optout_reasons": [("tdm-reservation meta" if o else None) for o in (optout or [False] * n)],
    })


def closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    with TestServer(ROUTES) as srv:
        paths = list(EXPECTED)
        urls = [srv.url(p) for p in paths]
        extra = {f"http://127.0.0.1:{closed_port()}/x.jpg": ("failed", "network_error"),
                 "not a url": ("skipped", "invalid_url"),
                 "file:///etc/passwd": ("skipped", "invalid_url")}
        urls += list(extra)
        optout = [p == "/page-optout.jpg" for p in paths] + [False] * len(extra)
        out = tmp_path_factory.mktemp("hostile")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()
        result = download_shard(make_pairs(urls, optout), out, config=DownloadConfig(**FAST))
        elapsed = time.monotonic() - t0
        rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        expected = [EXPECTED[p] for p in paths] + list(extra.values())
        yield dict(result=result, out=out, urls=urls, expected=expected, elapsed=elapsed,
                   rss_growth_mb=rss_growth_mb, srv=srv)


def test_every_hostile_case_ends_with_the_right_reason(hostile_run):
    rows = hostile_run["result"].status.to_pylist()
    got = [(r["status"], r["reason"]) for r in rows]
    wrong = [(u, g, e) for u, g, e in zip(hostile_run["urls"], got, hostile_run["expected"]) if g != e]
    assert not wrong, wrong


def test_hostile_shard_is_bounded_in_time_and_memory(hostile_run):
    # slow drip is cut by total_timeout_s (2.5 s); nothing may wait for the 60 s drip or 256 MB body
    assert hostile_run["elapsed"] < 20
    assert hostile_run["rss_growth_mb"] < 300  # the 900 MB bomb was never decoded


def test_status_table_contract(hostile_run):
    result = hostile_run["result"]
    assert result.status.schema == DOWNLOAD_SCHEMA
    assert result.status.column("key").to_pylist() == [f"{i:09d}" for i in range(len(hostile_run["urls"]))]
    ok = [r for r in result.status.to_pylist() if r["status"] == "ok"]
    assert ok and all(r["width"] and r["height"] and len(r["sha256"]) == 64 for r in ok)
    assert all(r["tar_member"] == r["key"] + ".jpg" and r["tar_path"] == "00000.tar" for r in ok)
    jpg = next(r for r in ok if r["url"].endswith("/ok.jpg"))
    assert (jpg["width"], jpg["height"]) == (640, 480)
    assert min(jpg["resized_width"], jpg["resized_height"]) == 64  # keep_ratio: smaller side
    assert result.tar_paths == [hostile_run["out"] / "00000.tar"]
    assert result.stats["status_ok"] == len(ok)
    assert result.stats["reason_blocked_address"] == 2


def test_policy_files_fetched_once_and_optout_rows_never_requested(hostile_run):
    srv = hostile_run["srv"]
    assert srv.requests_to("/robots.txt") == 1
    assert srv.requests_to("/.well-known/tdmrep.json") == 1
    for never in ("/page-optout.jpg", "/disallowed/a.jpg", "/alias-blocked/a.jpg", "/tdm/a.jpg"):
        assert srv.requests_to(never) == 0, never


def test_checks_pass_on_the_hostile_shard(hostile_run, tmp_path):
    result, out = hostile_run["result"], hostile_run["out"]
    pq.write_table(result.status, tmp_path / "downloads.parquet")
    pq.write_table(make_pairs(hostile_run["urls"]), tmp_path / "pairs.parquet")
    pq.write_table(list_tar_members(out), tmp_path / "tar_members.parquet")
    outcomes = run_checks({v: tmp_path / f"{v}.parquet" for v in ("pairs", "downloads", "tar_members")}, CHECKS)
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def test_retry_after_is_honoured_then_succeeds(tmp_path):
    calls = {"n": 0}

    def flaky(h):
        calls["n"] += 1
        if calls["n"] == 1:
            send(h, b"slow down", "text/plain", 429, {"Retry-After": "1"})
        else:
            send(h, JPG)

    routes = {"/flaky.jpg": flaky, "/never.jpg": static(b"no", "text/plain", 429, {"Retry-After": "3600"})}
    with TestServer(routes) as srv:
        t0 = time.monotonic()
        res = download_shard(make_pairs([srv.url("/flaky.jpg"), srv.url("/never.jpg")]), tmp_path,
                             config=DownloadConfig(**{**FAST, "retries": 3, "max_retry_after_s": 5}))
        elapsed = time.monotonic() - t0
    flaky_row, never_row = res.status.to_pylist()
    assert flaky_row["status"] == "ok" and flaky_row["attempts"] == 2
    assert elapsed >= 1.0  # waited Retry-After
    assert (never_row["status"], never_row["reason"]) == ("failed", "rate_limited")
    assert never_row["attempts"] == 1  # a 1-hour Retry-After is not waited for
    assert elapsed < 10


def test_failing_host_is_backed_off(tmp_path):
    with TestServer({}) as srv:  # every path 404 except...
        srv.routes.update({f"/e{i}.jpg": static(b"err", "text/plain", 503) for i in range(12)})
        urls = [srv.url(f"/e{i}.jpg") for i in range(12)]
        res = download_shard(make_pairs(urls), tmp_path, config=DownloadConfig(
            **{**FAST, "retries": 1, "host_failure_threshold": 3, "per_host_concurrency": 1,
               "respect_robots_txt": False, "respect_tdmrep": False}))
        image_requests = sum(srv.requests_to(f"/e{i}.jpg") for i in range(12))
    reasons = res.status.column("reason").to_pylist()
    assert reasons.count("host_backoff") >= 6
    assert set(reasons) <= {"rate_limited", "host_backoff"}
    assert image_requests < 12  # most rows never reached the failing host
    assert res.stats["hosts_backed_off"] == 1


def test_per_host_concurrency_and_connection_reuse(tmp_path):
    state = {"now": 0, "max": 0, "ports": set()}
    lock = threading.Lock()

    def tracked(h):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["ports"].add(h.client_address[1])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        send(h, JPG)

    with TestServer({f"/t{i}.jpg": tracked for i in range(20)}) as srv:
        res = download_shard(make_pairs([srv.url(f"/t{i}.jpg") for i in range(20)]), tmp_path,
                             config=DownloadConfig(**{**FAST, "per_host_concurrency": 2,
                                                      "respect_robots_txt": False,
                                                      "respect_tdmrep": False}))
    assert res.stats["status_ok"] == 20
    assert state["max"] <= 2
    assert len(state["ports"]) <= 4  # keep-alive: 20 requests over a handful of connections


def test_watchdog_ends_a_hanging_shard(tmp_path):
    with TestServer({"/slow.jpg": drip, "/ok.jpg": static(JPG)}) as srv:
        urls = [srv.url("/ok.jpg")] + [srv.url("/slow.jpg")] * 3
        t0 = time.monotonic()
        res = download_shard(make_pairs(urls), tmp_path, config=DownloadConfig(
            **{**FAST, "total_timeout_s": 600, "read_timeout_s": 600, "shard_timeout_s": 2.0,
               "respect_robots_txt": False, "respect_tdmrep": False}))
        elapsed = time.monotonic() - t0
    rows = res.status.to_pylist()
    assert rows[0]["status"] == "ok"
    assert [r["reason"] for r in rows[1:]] == ["shard_timeout"] * 3
    assert elapsed < 8
    assert res.stats["watchdog_fired"] == 1


def test_rerun_carries_ok_rows_and_retries_only_failed(tmp_path):
    broken = {"on": True}

    def sometimes(h):
        if broken["on"]:
            send(h, b"down", "text/plain", 500)
        else:
            send(h, JPG)

    routes = {"/ok.jpg": static(JPG), "/flaky.jpg": sometimes, "/tiny.jpg": static(TINY)}
    with TestServer(routes) as srv:
        pairs = make_pairs([srv.url("/ok.jpg"), srv.url("/flaky.jpg"), srv.url("/tiny.jpg")])
        cfg = DownloadConfig(**{**FAST, "respect_robots_txt": False, "respect_tdmrep": False})
        first = download_shard(pairs, tmp_path / "run1", config=cfg)
        assert [r["status"] for r in first.status.to_pylist()] == ["ok", "failed", "skipped"]
        broken["on"] = False
        before = {p: srv.requests_to(p) for p in routes}
        second = download_shard(pairs, tmp_path / "run2", config=cfg,
                                previous_status=first.status, previous_dir=tmp_path / "run1")
        after = {p: srv.requests_to(p) for p in routes}
    rows = second.status.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped"]
    assert after["/ok.jpg"] == before["/ok.jpg"]  # carried over, not fetched again
    assert after["/tiny.jpg"] == before["/tiny.jpg"]  # skipped is a decision, not retried
    assert after["/flaky.jpg"] == before["/flaky.jpg"] + 1
    assert rows[0]["sha256"] == first.status.to_pylist()[0]["sha256"]
    assert rows[1]["attempts"] == 2  # one failed attempt in run 1, one in run 2
    members = set(list_tar_members(tmp_path / "run2").column("member").to_pylist())
    assert {"000000000.jpg", "000000000.txt", "000000000.json", "000000001.jpg"} <= members
    assert second.stats["carried_over"] == 2 and second.stats["fetched_rows"] == 1


def test_empty_shard_and_progress(tmp_path):
    res = download_shard(make_pairs([]), tmp_path / "empty")
    assert res.status.num_rows == 0 and res.status.schema == DOWNLOAD_SCHEMA and res.tar_paths == []
    seen = []
    with TestServer({"/ok.jpg": static(JPG)}) as srv:
        res = download_shard(make_pairs([srv.url("/ok.jpg")] * 3), tmp_path / "p",
                             config=DownloadConfig(**{**FAST, "images_per_tar": 2}),
                             progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3, 3)
    assert [p.name for p in res.tar_paths] == ["00000.tar", "00001.tar"]  # images_per_tar rollover
    assert sorted(res.status.column("tar_path").to_pylist()) == ["00000.tar", "00000.tar", "00001.tar"]
