"""Fuzz harness for extraction (issue 10): seeds, mutations, hostile HTML, and the per-case bounds.

Used by test_extract_fuzz.py: a smoke subset in the default run, the >= 10k-case campaign behind the
`slow_fuzz` marker. Every case runs under a wall-clock alarm and tracemalloc: a hang or a memory blow-up
fails the case with its input, as an uncaught exception does.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import tracemalloc
import zlib
from collections import Counter
from contextlib import contextmanager

from hypothesis import strategies as st

from laion_assets.core.extract import ExtractConfig, extract_shard
from laion_assets_tests.core.extract._extract_warcgen import chunked, gz, http_response, page, real_warc_dir, record, request, warcinfo

FAST = ExtractConfig(max_bad_record_ratio=1.0, detect_caption_language=False)
FULL = ExtractConfig(max_bad_record_ratio=1.0)
CASE_TIME_LIMIT_S = 20.0  # per case, wall clock (a hang fails; the slowest real case takes well under 1 s)
STATS: Counter = Counter()  # cases run per class, and what the campaign saw (written to $FUZZ_REPORT)

IMG = '<html><head><title>T</title></head><body><img src="/cat.jpg" alt="A sleepy orange cat">' \
      '<img data-src="dog.png" src="blank.gif" alt="A dog in the snow"></body></html>'


class CaseTimeout(Exception):
    pass


@contextmanager
def bounded(limit_s: float = CASE_TIME_LIMIT_S, input_bytes: int = 0):
    """Fail a case that runs past limit_s (SIGALRM) or whose traced peak memory passes 48 MiB + 40x its input."""
    def on_alarm(signum, frame):
        raise CaseTimeout(f"case ran past {limit_s} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        STATS["peak_bytes_max"] = max(STATS["peak_bytes_max"], peak)
        assert peak < (48 << 20) + 40 * input_bytes, f"peak traced memory {peak} bytes for a {input_bytes}-byte input"
    finally:
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_WARM: list[bool] = []


def warm_once() -> None:
    """Load the caption-language model outside any bounded case (a one-off ~60 MB, not the case's)."""
    if not _WARM:
        extract(page("http://w.com/", IMG), FULL)
        _WARM.append(True)


def extract(data: bytes, config: ExtractConfig = FAST):
    return extract_shard(["fuzz.warc"], crawl="FUZZ", config=config, open_fn=lambda _: io.BytesIO(data))


def rows(res) -> list[tuple]:
    t = res.table
    return list(zip(t["url"].to_pylist(), t["text"].to_pylist(), t["page_url"].to_pylist(), t["warc_offset"].to_pylist()))


# ---- seeds -------------------------------------------------------------------------------------------
def generated_records() -> list[list[bytes]]:
    """Record lists of the kinds the reader must handle (each list is one file)."""
    pages = [page(f"http://h{i}.com/p", IMG.replace("cat", f"cat{i}")) for i in range(4)]
    return [
        [warcinfo(), request("http://h0.com/p"), *pages],
        [pages[0], record("response", "http://c.com/", http_response(chunked(IMG.encode()), "text/html",
                                                                   {"Transfer-Encoding": "chunked"})), pages[1]],
        [pages[2], record("response", "dns:h.com", b"20240520\nh.com. 300 IN A 192.0.2.1\n", content_type="text/dns"),
         page("http://g.com/", zlib.compress(IMG.encode()), headers={"Content-Encoding": "deflate"}), pages[3]],
    ]


def frame(records: list[bytes], compression: str) -> tuple[bytes, list[int]]:
    """File bytes and the end offset (in the bytes mutated) after each record."""
    out, ends, pos = [], [], 0
    for r in records:
        piece = gz(r) if compression == "record" else r
        out.append(piece)
        pos += len(piece)
        ends.append(pos)
    return b"".join(out), ends


def real_members() -> dict[str, list[bytes]]:
    """Each real WARC split into its gzip members (raw compressed bytes), at most 8 per file."""
    out = {}
    d = real_warc_dir()
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.warc.gz")):
        raw, members = p.read_bytes(), []
        while raw and len(members) < 8:
            z = zlib.decompressobj(31)
            z.decompress(raw)
            used = len(raw) - len(z.unused_data)
            members.append(raw[:used])
            raw = z.unused_data
        out[p.name] = members
    return out


# ---- mutations ---------------------------------------------------------------------------------------
HOSTILE_BYTES = [b"\x00", b"\r\n", b"\n\n", b"\r\n\r\n", b"WARC/1.0\r\n", b"Content-Length: 99999999\r\n",
                 b"\x1f\x8b\x08\x00", b"HTTP/1.1 200 OK\n", b"<img ", b">", b'"', b"\xff\xfe", b"\x1f\x8b"]


@st.composite
def mutations(draw, size: int):
    """A list of (op, position, payload) edits, positions in [0, size)."""
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "hostile", "zero"]))
        pos = draw(st.integers(0, max(size - 1, 0)))
        ln = draw(st.integers(1, 64))
        val = draw(st.binary(min_size=1, max_size=16)) if op == "insert" else draw(st.sampled_from(HOSTILE_BYTES))
        ops.append((op, pos, ln, val))
    return ops


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, ln, val in ops:
        pos = min(pos, len(b))
        if op == "flip" and pos < len(b):
            b[pos] ^= 1 << (ln % 8)
        elif op == "insert":
            b[pos:pos] = val
        elif op == "delete":
            del b[pos : pos + ln]
        elif op == "truncate":
            del b[pos:]
        elif op == "dup":
            b[pos:pos] = b[pos : pos + ln * 16]
        elif op == "hostile":
            b[pos:pos] = val * (1 + ln % 8)
        elif op == "zero":
            b[pos : pos + ln] = bytes(len(b[pos : pos + ln]))
    return bytes(b)


# ---- hostile HTML ------------------------------------------------------------------------------------
FRAGMENTS = ["<img ", "<img src=", '<img src="/a.jpg" alt="', '"', "'", ">", "/>", "<title>", "</title>", "<!--", "-->",
             "<script>", "</script>", "<style>", "<textarea>", "<image src=", "<base href=", "<meta charset=",
             "utf-7", "rot13", "x-user-defined", "<meta name=robots content=noai>", "data-src=", "data-lazy=/x.png ",
             "srcset=", " 2x, ", "&#0;", "&amp", "&#x110000;", "\x00", "\ufffd", "\t", "\n", "javascript:", "data:",
             "http://", "https://a.com/", "\x00https://a/b.jpg", "blank.gif", "lazy-l.png", "<noscript>", "alt=",
             "<a href=https://creativecommons.org/licenses/by/4.0/ rel=license>", "<html lang=", "é", "😀", "\u202e",
             "<svg>", "<", "=", " "]


URL_HEADS = ["", "http://", "https://", "//", "/", "\x00https://", " http://", "HTTP://", "http://[", "http://a.com:",
             "http:\\\\", "javascript:", "data:image/png,", "ftp://", "http://user@", "http://%", "https://xn--"]


@st.composite
def img_tag(draw) -> str:
    """A complete <img> whose src and alt are hostile but whose markup closes (so it can become a row)."""
    src = draw(st.sampled_from(URL_HEADS)) + draw(st.text(max_size=24))
    alt = draw(st.text(min_size=0, max_size=30))
    q = draw(st.sampled_from(['"', "'"]))
    attr = draw(st.sampled_from(["src", "data-src", "data-lazy-x", "srcset"]))
    return f"<img {attr}={q}{src.replace(q, '')}{q} alt={q}{alt.replace(q, '')}{q}>"


@st.composite
def hostile_html(draw) -> bytes:
    parts = draw(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12), img_tag()), max_size=40))
    html = "".join(parts) * draw(st.sampled_from([1, 1, 1, 10, 200]))
    enc = draw(st.sampled_from(["utf-8", "cp1252", "gb18030", "shift_jis", "utf-16-le"]))
    return html.encode(enc, "replace")


def blocking_check_failures(res) -> list[str]:
    """Names of the blocking row checks (DuckDB, the real SQL) that the result's rows would fail.

    The bad-record ratio is left out: a hostile case may legitimately be over it."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from laion_assets.core import checks as quality
    from laion_assets.core.extract import stats_table
    from laion_assets.core.extract.checks import CHECKS

    with tempfile.TemporaryDirectory() as tmp:
        views = {"pairs": Path(tmp) / "p.parquet", "pair_errors": Path(tmp) / "e.parquet", "pair_stats": Path(tmp) / "s.parquet"}
        pq.write_table(res.table, views["pairs"])
        pq.write_table(res.errors, views["pair_errors"])
        pq.write_table(stats_table(res.stats), views["pair_stats"])
        checks = [c for c in CHECKS if c.blocking and c.name != "bad_record_ratio_under_threshold"]
        return [o.name for o in quality.run_checks(views, checks) if not o.passed]


def write_report() -> None:
    path = os.environ.get("FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(dict(STATS), f, indent=1, sort_keys=True)


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    STATS["max_case_s_x1000"] = max(STATS["max_case_s_x1000"], int((time.perf_counter() - t0) * 1000))
    return out
