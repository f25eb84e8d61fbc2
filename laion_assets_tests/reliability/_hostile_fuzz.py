"""Generators and per-case bounds for issue 19's hostile classes (the fuzz campaign's second half).

Every generator takes a seeded `random.Random` and varies its class (sizes, shapes, counts,
encodings, timings), so a failing case is replayed from its seed. `measured` runs one case under a
wall-clock alarm and records wall time, CPU time and peak memory: tracemalloc for Python-level work,
or the decoder process's VmHWM growth (reset through /proc/<pid>/clear_refs) for Pillow/libjpeg work,
which tracemalloc cannot see. FIGURES holds, per class, the cases run and the worst of each figure
(written to $FUZZ_REPORT by the campaign and quoted in docs/reliability.md).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import signal
import time
import tracemalloc
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

SECRET = "T000/B000/fuzz-secret-token"
FIGURES: dict[str, Counter] = defaultdict(Counter)


class CaseTimeout(Exception):
    pass


def _rss_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1))


@contextmanager
def measured(cls: str, *, limit_s: float, peak_limit_mb: float, pid: int | None = None, alarm: bool = True):
    """One case of `cls`: fails past `limit_s` wall or `peak_limit_mb` peak; records the figures."""
    def on_alarm(signum, frame):
        raise CaseTimeout(f"{cls}: case ran past {limit_s} s")

    if alarm:
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s + 5.0)  # a backstop: the assert below is the bound
    if pid is not None:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        base_kb = _rss_kb(pid, "VmRSS")
    else:
        tracemalloc.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if pid is not None:
            peak_mb = max(0, _rss_kb(pid, "VmHWM") - base_kb) / 1024 if _alive(pid) else 0.0
        else:
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        fig = FIGURES[cls]
        fig["cases"] += 1
        fig["max_wall_ms"] = max(fig["max_wall_ms"], round(wall * 1000))
        fig["max_cpu_ms"] = max(fig["max_cpu_ms"], round(cpu * 1000))
        fig["max_peak_kb"] = max(fig["max_peak_kb"], round(peak_mb * 1024))
        fig["total_wall_ms"] += round(wall * 1000)
        assert wall <= limit_s, f"{cls}: {wall:.2f} s > {limit_s} s"
        assert peak_mb <= peak_limit_mb, f"{cls}: peak {peak_mb:.1f} MB > {peak_limit_mb} MB"
    finally:
        if pid is None:
            tracemalloc.stop()
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}/status").exists()


def outcome(cls: str, what: str) -> None:
    FIGURES[cls][f"outcome_{what}"] += 1


def write_report(path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps({k: dict(v) for k, v in sorted(FIGURES.items())}, indent=1))


# ----------------------------------------------------------------------------- images
def thin_image(rng: random.Random) -> tuple[bytes, dict]:
    """A tiny file whose aspect ratio makes the resize output huge (or a big but allowed image)."""
    fmt = rng.choice(["PNG", "PNG", "JPEG", "WEBP"])  # the downloader's formats; each header's side limit
    mode = rng.choice(["L", "RGB", "RGBA", "P", "1", "LA", "I;16"]) if fmt == "PNG" else rng.choice(["L", "RGB"])
    long_side = rng.choice({"PNG": [20_000, 65_000, 100_000, 250_000, 1_000_000], "JPEG": [20_000, 65_000],
                            "WEBP": [5_000, 16_383]}[fmt])
    short = rng.randint(1, 4)
    if rng.random() < 0.15:  # big but within max_pixels: the decode-memory bound works here
        long_side, short = rng.choice([(3000, 3000), (5000, 2000), (4096, 4096)])
        fmt, mode = "PNG", rng.choice(["RGB", "RGBA", "L"])
    w, h = (long_side, short) if rng.random() < 0.5 else (short, long_side)
    if w * h > 64_000_000:
        w, h = (min(w, 64_000_000 // h), h)
    b = io.BytesIO()
    save = {"compress_level": 1} if fmt == "PNG" else {"quality": 50}
    Image.new(mode, (w, h)).save(b, fmt, **save)
    kwargs = {"image_size": rng.choice([64, 256, 512, 1024]),
              "resize_mode": rng.choice(["keep_ratio", "keep_ratio_largest", "center_crop", "border"]),
              "max_decode_bytes": 64 * 2**20}
    return b.getvalue(), kwargs


_JPEG_BASE: dict[int, tuple[bytes, bytes]] = {}


def scan_bomb(rng: random.Random) -> bytes:
    """A progressive JPEG with its smallest scan repeated thousands of times (sizes and counts vary)."""
    from laion_assets_tests.core.download.test_download_bombs import many_scans_jpeg

    side = rng.choice([512, 1000, 2000, 3000, 4000])
    scans = rng.choice([10, 500, 5000, 20_000, 60_000])
    if side not in _JPEG_BASE:
        one = many_scans_jpeg(side, 1)
        two = many_scans_jpeg(side, 2)
        _JPEG_BASE[side] = (one[:-2], two[len(one) - 2:-2])  # (file up to the first extra scan, one scan)
    head, scan = _JPEG_BASE[side]
    return head + scan * (scans - 1) + b"\xff\xd9"


# ----------------------------------------------------------------------------- robots / TDMRep
def wildcard_rule(rng: random.Random) -> tuple[str, str]:
    """(a Disallow pattern with many wildcards, an adversarial path for it)."""
    lit = rng.choice(["a", "ab", "aa", "/a", "%61", "é"])
    stars = rng.randint(1, 40)
    pattern = "/" + "".join("*" * rng.randint(1, 3) + (lit if rng.random() < 0.9 else "b") for _ in range(stars))
    if rng.random() < 0.4:
        pattern += "*b"
    if rng.random() < 0.3:
        pattern += "$"
    n = rng.choice([10, 200, 2_000, 50_000, 200_000])
    path = "/" + (lit * (n // len(lit) + 1))[:n] + rng.choice(["", "b", "c", "$"])
    return pattern, path


def robots_file(rng: random.Random) -> tuple[str, list[str]]:
    lines = ["User-agent: *"]
    for _ in range(rng.choice([1, 10, 1000, 10_000])):
        pat, _ = wildcard_rule(rng)
        lines.append(f"{rng.choice(['Disallow', 'Allow', 'disallow'])}: {pat[:200]}")
    pats = [wildcard_rule(rng)[1][:rng.choice([50, 5000])] for _ in range(5)]
    return "\n".join(lines) + "\n", pats


# ----------------------------------------------------------------------------- extraction
def flood_page(rng: random.Random, max_url_chars: int) -> tuple[str, int, int]:
    """(HTML of one page, <img> count, long-URL count): row floods and URLs around and far over the cap."""
    n = rng.choice([0, 1, 500, 2_500, 20_000, 60_000])
    tags, longs = [], 0
    for i in range(n):
        tags.append(f'<img src="/i/{i}.jpg" alt="caption number {i} of the flood">')
    for _ in range(rng.randint(0, 4)):
        size = rng.choice([max_url_chars - 40, max_url_chars + 1, 100_000, 2_000_000])
        longs += size > max_url_chars - 30
        tags.insert(rng.randint(0, len(tags)), f'<img src="/{"u" * size}.jpg" alt="a very long url here">')
    return "".join(tags), n, longs


def alt_text(rng: random.Random, max_chars: int = 1_000_000) -> str:
    size = min(max_chars, rng.choice([10, 300, 2_500, 20_000, 1_000_000]))
    alphabet = rng.choice(["é", "\u00c3\u00a9", "ab ", "\u4e2d\u6587", "\U0001f600", "caf\u00e9 "])
    return f"{rng.random()} " + (alphabet * (size // len(alphabet) + 1))[:size]


def junk_member(rng: random.Random) -> bytes:
    """Bytes of one gzip member that are not a WARC record."""
    from laion_assets_tests.core.extract._extract_warcgen import gz, page

    kind = rng.choice(["random", "nested", "warc_head", "text", "empty", "zeros", "html"])
    if kind == "random":
        return bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000])))
    if kind == "nested":
        return gz(gz(page("https://n.example/x", '<img src="/n.jpg" alt="nested gzip image">')))
    if kind == "warc_head":
        return b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: " + str(rng.choice([5, 10**9])).encode() + b"\r\n\r\nxx"
    if kind == "text":
        return ("junk line\n" * rng.randint(1, 500)).encode()
    if kind == "zeros":
        return bytes(rng.choice([1, 1 << 16, 1 << 20]))
    if kind == "html":
        return b"<html><img src='/h.jpg' alt='not inside a warc record'></html>"
    return b""


# ----------------------------------------------------------------------------- webhook receivers
def receiver_answer(rng: random.Random):
    """A misbehaving receiver: (answer(conn, stop), short name)."""
    kind = rng.choice(["bad_status", "garbage", "trickle", "close", "huge_head", "half_head", "slow_status"])
    if kind == "bad_status":
        line = rng.choice([b"HTTP/1.1 2OO ", b"HTTP/1.1 ", b"HTTP/9 200", b"ICY 200 OK", b"HTTP/1.1 99999 X",
                           b"HTTP/1.1 -1 ", b"HTTP/1.1 200" + b"\x00" * 5]) + SECRET.encode()
        return (lambda c, s: c.sendall(line + b"\r\n\r\n")), kind
    if kind == "garbage":
        blob = bytes(rng.randrange(256) for _ in range(rng.choice([1, 50, 5000])))
        return (lambda c, s: c.sendall(blob)), kind
    if kind in ("trickle", "slow_status"):
        gap = rng.choice([0.05, 0.2, 0.5])
        text = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200 if kind == "trickle" else b"HTTP/1.1 200 OK"

        def answer(c, s):
            for byte in text:
                if s.wait(gap):
                    return
                c.sendall(bytes([byte]))
        return answer, kind
    if kind == "huge_head":
        size = rng.choice([20_000, 200_000])
        return (lambda c, s: c.sendall(b"HTTP/1.1 200 OK\r\nX: " + b"a" * size + b"\r\n\r\n")), kind
    if kind == "half_head":
        return (lambda c, s: c.sendall(b"HTTP/1.1 200 OK\r\nX-Cut:")), kind
    return (lambda c, s: None), kind


def bad_webhook_url(rng: random.Random, port: int) -> str:
    base = f"http://127.0.0.1:{port}/services/{SECRET}"
    kind = rng.randrange(8)
    if kind == 0:
        return base.split("://", 1)[1]  # no scheme
    if kind == 1:
        i = rng.randrange(len(base))
        return base[:i] + rng.choice(["\r\n", "\x00", "\x7f", "\t", " ", "\x1b"]) + base[i:]
    if kind == 2:
        return base.replace(f":{port}", rng.choice([":99999", ":-1", ":abc", ":", ":0"]))
    if kind == 3:
        return rng.choice(["ftp", "file", "gopher", "javascript", "HTTP:"]) + "://" + base.split("://", 1)[1]
    if kind == 4:
        return base.replace("127.0.0.1", rng.choice(["", "[::1", "127.0.0.1]", "a b", "exa\u00admple"]))
    if kind == 5:
        return base.replace("http://", rng.choice(["http:/", "http:", "//", "http:///"]))
    if kind == 6:
        return "\ufeff" + base
    return base + "#" + "\n" * rng.randint(1, 3)


# ----------------------------------------------------------------------------- lazy-load values
def lazy_value(rng: random.Random) -> str:
    url = rng.choice(["https://cdn.example/x.jpg", "/img/x.jpg", "x.jpg", "//cdn.example/y.png"])
    return rng.choice([
        f"[{url}, (default)]", f"{{\"src\": \"{url}\"}}", f"({url})", f"<{url}>", f"'{url}'", f"`{url}`",
        f"{url} 1x, {url} 2x", f"{url}\t{url}", "javascript:void(0)", "http://", "https://", "null",
        "undefined", "{{ image.url }}", "${src}", f"data:image/png;base64,{url}", "about:blank", url,
        f"{url}?w=300,h=200", f"mailto:{url}", f"\"{url}\"", f"[{url}]", f"ftp://h/{url}",
    ])


# ----------------------------------------------------------------------------- crawl listings
GOOD_LINES = [
    "crawl-data/CC-X/segments/1/warc/a{n}.warc.gz", "crawl-data/CC-X/b{n}.arc.gz", "c{n}.warc",
    "s3://bucket/crawl-data/d{n}.warc.gz", "https://data.example/crawl-data/e{n}.warc.wat.gz",
    "/abs/dir/f{n}.warc.gz", "file:///abs/dir/g{n}.arc",
]
BAD_LINES = [
    "ftp://h/a{n}.warc.gz", "C:/x/a{n}.warc.gz", "crawl-data/../a{n}.warc.gz", "crawl-data/a{n}.txt",
    "file://rel/a{n}.warc.gz", "a {n}.warc.gz", "a\x01{n}.warc.gz", "/abs/../etc/a{n}.warc.gz",
    "file:///abs/../a{n}.warc.gz", "s3://bucket/../a{n}.warc.gz", "https://h/x/../a{n}.warc.gz",
    "a\x7f{n}.warc.gz", "javascript:a{n}.warc.gz",
]


def listing_lines(rng: random.Random) -> tuple[list[str], int | None]:
    """(lines, the 1-based number of the first bad line or None)."""
    n = rng.choice([1, 10, 1000, 50_000])
    lines = [rng.choice(GOOD_LINES).format(n=i) for i in range(n)]
    for _ in range(rng.randint(0, 3)):
        lines.insert(rng.randint(0, len(lines)), rng.choice(["", "   "]))  # blank lines are skipped
    bad = None
    if rng.random() < 0.6:
        at = rng.randrange(len(lines) + 1)
        lines.insert(at, rng.choice(BAD_LINES).format(n="x"))
        bad = at + 1
    return lines, bad


def write_listing(path: Path, lines: list[str]) -> str:
    path.write_bytes(gzip.compress("\n".join(lines).encode(), mtime=0))
    return str(path)
