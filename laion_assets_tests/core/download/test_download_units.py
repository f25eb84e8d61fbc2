"""Unit tests of the download core's parts: SSRF guard, opt-out parsers, resizer, checks."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from laion_assets.core.download import REASONS, DownloadConfig
from laion_assets.core.download.checks import CHECKS
from laion_assets.core.download.fetcher import parse_retry_after
from laion_assets.core.download.netguard import AddressPolicy, BlockedAddress, Resolver, is_public
from laion_assets.core.download.policy import (
    RobotsRules,
    parse_tdmrep,
    tdmrep_reserved,
    x_robots_optout,
)
from laion_assets.core.download.resizer import ImageRejected, process_image, sniff
from laion_assets.core.checks import run_checks
from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA
from laion_assets.testing.http_server import make_jpeg

# ------------------------------------------------------------------------------ netguard


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                                "::ffff:169.254.169.254", "224.0.0.1", "255.255.255.255", "2002:7f00:1::"])
def test_non_public_addresses_are_refused(ip):
    assert not is_public(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5"])
def test_public_addresses_pass(ip):
    assert is_public(ipaddress.ip_address(ip))


def test_allow_list_is_exact():
    policy = AddressPolicy(["127.0.0.1", "fd00::/8"])
    assert policy.allowed(ipaddress.ip_address("127.0.0.1"))
    assert not policy.allowed(ipaddress.ip_address("127.0.0.2"))
    assert not policy.allowed(ipaddress.ip_address("10.0.0.1"))
    assert policy.allowed(ipaddress.ip_address("fd12::1"))


def test_resolver_checks_names_after_resolving():
    """`localhost` resolves (from /etc/hosts, no packets) to loopback: refused unless allowed."""
    async def go(allow):
        r = Resolver(AddressPolicy(allow), ttl_s=60)
        try:
            return await r.resolve("localhost")
        finally:
            r.close()

    with pytest.raises(BlockedAddress):
        asyncio.run(go(()))
    with pytest.raises(BlockedAddress):
        asyncio.run(go(("169.254.169.254",)))
    addrs = asyncio.run(go(("127.0.0.0/8", "::1")))
    assert all(a.is_loopback for a in addrs)


def test_resolver_refuses_literals_without_lookup():
    async def go():
        r = Resolver(AddressPolicy(()), ttl_s=60)
        try:
            for host in ("169.254.169.254", "[::1]", "10.1.2.3"):
                with pytest.raises(BlockedAddress):
                    await r.resolve(host)
            return r.lookups
        finally:
            r.close()

    assert asyncio.run(go()) == 0


# ------------------------------------------------------------------------------ policy parsers


def test_x_robots_tag():
    tokens = ["laion-assets", "img2dataset"]
    assert x_robots_optout(["noai"], tokens) == "noai"
    assert x_robots_optout(["index, NoImageAI"], tokens) == "noimageai"
    assert x_robots_optout(["noml"], tokens) == "noml"
    assert x_robots_optout(["laion-assets: noai"], tokens) == "noai"
    assert x_robots_optout(["img2dataset: noimageai"], tokens) == "noimageai"
    assert x_robots_optout(["googlebot: noai", "noindex"], tokens) is None
    assert x_robots_optout(["unavailable_after: 25 Jun 2010 15:00:00 PST"], tokens) is None
    assert x_robots_optout([], tokens) is None


ROBOTS = """
# comment
User-agent: Googlebot
Disallow: /

User-agent: laion-assets
User-agent: other
Disallow: /private/
Allow: /private/public-*.jpg$
Disallow: /*.png$
Crawl-delay: 3

User-agent: *
Disallow: /everything-else/
"""


def test_robots_group_longest_match_and_wildcards():
    r = RobotsRules.parse(ROBOTS, ["laion-assets"])
    assert not r.allowed("http://h/private/a.jpg")
    assert r.allowed("http://h/private/public-1.jpg")
    assert not r.allowed("http://h/private/public-1.jpg.html")
    assert not r.allowed("http://h/img/x.png")
    assert r.allowed("http://h/img/x.png?size=2")
    assert r.allowed("http://h/everything-else/a.jpg")  # our group replaces `*`
    star = RobotsRules.parse(ROBOTS, ["nobody"])
    assert not star.allowed("http://h/everything-else/a.jpg")
    assert star.allowed("http://h/private/a.jpg")
    assert RobotsRules.parse("User-agent: *\nDisallow:\n", ["x"]).allowed("http://h/a")
    assert not RobotsRules.disallow_all().allowed("http://h/")


def test_tdmrep_first_match_wins():
    rules = parse_tdmrep('[{"location": "/free/*", "tdm-reservation": 0},'
                         ' {"location": "/*", "tdm-reservation": 1}]')
    assert not tdmrep_reserved(rules, "http://h/free/a.jpg")
    assert tdmrep_reserved(rules, "http://h/other/a.jpg")
    assert parse_tdmrep("not json") == [] and parse_tdmrep('{"a": 1}') == []


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    from email.utils import formatdate

    assert 25 < parse_retry_after(formatdate(time.time() + 30, usegmt=True)) <= 31


# ------------------------------------------------------------------------------ resizer


@pytest.mark.parametrize(
    "mode,expected",
    [("keep_ratio", (341, 256)), ("center_crop", (256, 256)), ("border", (256, 256)), ("no", (1200, 900))],
)
def test_resize_modes(mode, expected):
    p = process_image(make_jpeg(1200, 900, seed=4), image_size=256, resize_mode=mode)
    assert (p.width, p.height) == (1200, 900)
    assert (p.resized_width, p.resized_height) == expected
    out = Image.open(io.BytesIO(p.jpeg))
    assert out.size == expected and out.format == "JPEG"


def test_border_pads_with_border_color():
    p = process_image(make_jpeg(800, 400, seed=5), image_size=128, resize_mode="border",
                      border_color=(0, 0, 0))
    out = Image.open(io.BytesIO(p.jpeg)).convert("RGB")
    assert out.getpixel((64, 2)) == pytest.approx((0, 0, 0), abs=12)  # top band is border


def test_hashes_are_of_the_original_bytes():
    import hashlib

    data = make_jpeg(400, 300, seed=6)
    p = process_image(data)
    assert p.sha256 == hashlib.sha256(data).hexdigest() and p.md5 == hashlib.md5(data).hexdigest()
    assert p.sha1 == hashlib.sha1(data).hexdigest()


def test_png_with_alpha_and_webp():
    img = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, fmt)
        p = process_image(buf.getvalue(), image_size=64)
        assert p.format == fmt and (p.resized_width, p.resized_height) == (64, 64)
        # transparent -> composited on white, not black
        assert Image.open(io.BytesIO(p.jpeg)).getpixel((32, 32)) == pytest.approx((255, 255, 255), abs=8)


def test_pixel_limit_checked_before_decoding():
    big = make_jpeg(3000, 2000, seed=7)
    t0 = time.perf_counter()
    with pytest.raises(ImageRejected) as e:
        process_image(big, max_pixels=1_000_000)
    assert e.value.reason == "decompression_bomb"
    assert time.perf_counter() - t0 < 0.05  # header only; a decode takes far longer


def test_rejects_non_images_and_truncation():
    assert sniff(b"<html>") is None
    with pytest.raises(ImageRejected) as e:
        process_image(b"GIF89a" + b"\0" * 6000)
    assert e.value.reason == "not_an_image"
    with pytest.raises(ImageRejected) as e:
        process_image(make_jpeg(1000, 800, seed=8)[:20_000])
    assert e.value.reason == "decode_error"


def test_config_validates():
    with pytest.raises(ValueError):
        DownloadConfig(resize_mode="stretch")
    with pytest.raises(ValueError):
        DownloadConfig(min_bytes=10, max_bytes=5)


# ------------------------------------------------------------------------------ checks


def _status(rows):
    base = {f.name: None for f in DOWNLOAD_SCHEMA}
    return pa.Table.from_pylist([{**base, "attempts": 1, **r} for r in rows], schema=DOWNLOAD_SCHEMA)


SHA = "a" * 64
PDQ = "0f" * 32


def _good():
    pairs = pa.table({"key": ["000000000", "000000001", "000000002"],
                      "url": ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]})
    downloads = _status([
        {"key": "000000000", "url": "http://a/1.jpg", "status": "ok", "width": 10, "height": 10,
         "sha256": SHA, "md5": "b" * 32, "sha1": "c" * 40, "pdq": PDQ, "pdq_quality": 100, "tar_path": "00000.tar",
         "tar_member": "00007_000000000.jpg"},
        {"key": "000000001", "url": "http://a/2.jpg", "status": "skipped", "reason": "robots_txt"},
        {"key": "000000002", "url": "http://a/3.jpg", "status": "failed", "reason": "timeout"},
    ])
    members = pa.table({"tar_path": ["00000.tar"] * 3,
                        "member": ["00007_000000000.jpg", "00007_000000000.txt", "00007_000000000.json"]})
    return pairs, downloads, members


def _outcomes(tmp_path, pairs, downloads, members):
    import pyarrow.parquet as pq

    for name, t in (("pairs", pairs), ("downloads", downloads), ("tar_members", members)):
        pq.write_table(t, tmp_path / f"{name}.parquet")
    views = {n: tmp_path / f"{n}.parquet" for n in ("pairs", "downloads", "tar_members")}
    return {o.name: o for o in run_checks(views, CHECKS)}


def test_checks_pass_on_good_data(tmp_path):
    out = _outcomes(tmp_path, *_good())
    assert all(o.passed for o in out.values()), out
    assert len(out) == len(CHECKS) == 5


def _edit(table, i, **changes):
    rows = table.to_pylist()
    rows[i] = {**rows[i], **changes}
    return pa.Table.from_pylist(rows, schema=table.schema)


@pytest.mark.parametrize("breakage,check", [
    ("drop_row", "downloads_one_row_per_pair"),
    ("duplicate_row", "downloads_one_row_per_pair"),
    ("extra_key", "downloads_one_row_per_pair"),
    ("url_changed", "downloads_one_row_per_pair"),
    ("ok_without_sha", "downloads_ok_rows_complete"),
    ("ok_without_width", "downloads_ok_rows_complete"),
    ("ok_without_pdq", "downloads_ok_rows_complete"),
    ("pdq_not_hex", "downloads_ok_rows_complete"),
    ("sha1_too_short", "downloads_ok_rows_complete"),
    ("md5_not_hex", "downloads_ok_rows_complete"),
    ("pdq_quality_out_of_range", "downloads_ok_rows_complete"),
    ("pdq_on_failed_row", "downloads_ok_rows_complete"),
    ("member_of_other_key", "downloads_ok_rows_complete"),
    ("dot_in_member_key", "downloads_ok_rows_complete"),
    ("member_used_twice", "downloads_tar_members_unique"),
    ("ok_missing_member", "downloads_ok_rows_in_tars"),
    ("ok_missing_caption", "downloads_ok_rows_in_tars"),
    ("skipped_without_reason", "downloads_reason_vocabulary"),
    ("unknown_reason", "downloads_reason_vocabulary"),
    ("reason_of_other_status", "downloads_reason_vocabulary"),
    ("bad_status", "downloads_reason_vocabulary"),
])
def test_each_check_fails_on_data_built_to_break_it(tmp_path, breakage, check):
    pairs, downloads, members = _good()
    if breakage == "drop_row":
        downloads = downloads.slice(0, 2)
    elif breakage == "duplicate_row":
        downloads = pa.concat_tables([downloads, downloads.slice(1, 1)])
    elif breakage == "extra_key":
        downloads = pa.concat_tables([downloads, _edit(downloads, 2, key="000000009").slice(2, 1)])
    elif breakage == "url_changed":
        downloads = _edit(downloads, 1, url="http://evil/")
    elif breakage == "ok_without_sha":
        downloads = _edit(downloads, 0, sha256=None)
    elif breakage == "ok_without_width":
        downloads = _edit(downloads, 0, width=None)
    elif breakage == "ok_without_pdq":
        downloads = _edit(downloads, 0, pdq=None)
    elif breakage == "pdq_not_hex":
        downloads = _edit(downloads, 0, pdq="G" * 64)
    elif breakage == "sha1_too_short":
        downloads = _edit(downloads, 0, sha1="c" * 39)
    elif breakage == "md5_not_hex":
        downloads = _edit(downloads, 0, md5="B" * 32)
    elif breakage == "pdq_quality_out_of_range":
        downloads = _edit(downloads, 0, pdq_quality=101)
    elif breakage == "pdq_on_failed_row":
        downloads = _edit(downloads, 2, pdq=PDQ)
    elif breakage == "member_of_other_key":
        downloads = _edit(downloads, 0, tar_member="00007_000000001.jpg")
    elif breakage == "dot_in_member_key":
        downloads = _edit(downloads, 0, tar_member="x.y_000000000.jpg")
    elif breakage == "member_used_twice":
        downloads = _edit(downloads, 2, tar_member="00007_000000000.jpg")
    elif breakage == "ok_missing_member":
        members = members.slice(1, 2)
    elif breakage == "ok_missing_caption":
        members = members.filter(pc.not_equal(members["member"], "00007_000000000.txt"))
    elif breakage == "skipped_without_reason":
        downloads = _edit(downloads, 1, reason=None)
    elif breakage == "unknown_reason":
        downloads = _edit(downloads, 1, reason="felt_like_it")
    elif breakage == "reason_of_other_status":
        assert REASONS["timeout"] == "failed"
        downloads = _edit(downloads, 1, reason="timeout")  # a skipped row with a failure reason
    elif breakage == "bad_status":
        downloads = _edit(downloads, 2, status="lost")
    out = _outcomes(tmp_path, pairs, downloads, members)
    assert not out[check].passed and out[check].failing_rows >= 1


def test_checks_pass_on_ok_rows_carried_over_without_md5_sha1(tmp_path):
    """Rows carried over from a status written before md5/sha1 keep them null: not a failure."""
    pairs, downloads, members = _good()
    out = _outcomes(tmp_path, pairs, _edit(downloads, 0, md5=None, sha1=None), members)
    assert all(o.passed for o in out.values()), out
