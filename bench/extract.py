"""Benchmark, COLD: extract_shard against FastWARC + selectolax (WARC) or FastWARC + json (WAT), same
LAION rules, same files, CPU seconds beside wall.

Every round builds new per-record-gzip files of DISTINCT pages (the real HTML pages of
$LAION_REAL_WARC_DIR, or ../shared/data/real-warc, copied under new URLs with every alt text numbered
by round and copy), so no process-wide cache (caption repair, language) ever sees a caption twice: a
crawl is read once. Both sides read the same round's files; the order alternates per round. The
figure is the total over all rounds (pages / CPU seconds of this process), not a best round.

The peer applies LAION's rules the way a user of those libraries would write them: alt stripped and
whitespace collapsed, ftfy on non-ASCII captions, 5..2000 characters, src (the peer WARC loop also
takes `data-src`), urljoin against <base href>/the page, http(s) only, host <= 60 characters, no
.svg/.gif, exact (url, text) dedup. It does NOT identify languages, decode charsets by the WHATWG
rules, read opt-outs or licences; ours does all of that (every rule in docs/extraction.md).

Start-up (imports and models) is measured apart, in fresh processes: `startup` line.

    python bench/extract.py [--format warc|wat] [--pages 1500] [--rounds 3] [--trafilatura] [--sides]
`--trafilatura`: also runs ours with main_content_signals on (trafilatura on the pages that yield pairs)
and prints its cost as a `trafilatura` line (ours plain / ours with it); the last line stays plain ours.
`--sides`: also runs, on the same files, ours with the tolerant reader only (the FastWARC reader
off: a stream that cannot seek), ours without caption language id (which the peer does not do) and
ours with the regex tag scan instead of the C one (`htmlscan.use_native_scan(False)`), and prints a
`reader`, a `no_language` and a `tagscan` line; the last line stays plain ours.
`--source real|generated|auto`: the real WARCs' pages, or bench/extract_cores.py's generated web-like
pages (auto: real when present).
Start-up: both sides' code is byte-compiled first (`compileall`; the peers' wheels ship compiled,
and with PYTHONDONTWRITEBYTECODE=1 a fresh checkout would otherwise recompile ours every start).
Last line: bench: extract pages_per_cpu_s=<ours> fastwarc_selectolax_pages_per_cpu_s=<peer> ratio=<ours/peer>
(`--format wat`: fastwarc_json_pages_per_cpu_s).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = Path(os.environ.get("LAION_REAL_WARC_DIR") or ROOT / ".." / "shared" / "data" / "real-warc")


def real_pages() -> list[tuple[str, bytes]]:
    """(Content-Type, decoded HTML body) of every HTML response in the real WARCs."""
    from warcio.archiveiterator import ArchiveIterator

    out = []
    for p in sorted(REAL.glob("*.warc.gz")):
        with open(p, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response" and rec.http_headers:
                    ct = rec.http_headers.get_header("Content-Type") or ""
                    if "html" in ct:
                        out.append((ct, rec.content_stream().read()))  # de-chunked, decoded
    return out


def _record(rtype: str, uri: str, block: bytes, ctype: str) -> bytes:
    hdr = (f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Date: 2024-05-20T00:00:00Z\r\n"
           f"WARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\nWARC-Target-URI: {uri}\r\n"
           f"Content-Type: {ctype}\r\nContent-Length: {len(block)}\r\n\r\n").encode()
    return gzip.compress(hdr + block + b"\r\n\r\n", compresslevel=6)


def _wat_json(uri: str, ctype: str, body: bytes, warc_name: str, offset: int) -> bytes:
    """What Common Crawl's WAT writer records for a page: head (title, base, metas) and IMG@/src links."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(body)
    head: dict = {"Metas": [dict(m.attributes) for m in tree.css("meta")]}
    t = tree.css_first("title")
    if t is not None:
        head["Title"] = t.text()
    b = tree.css_first("base[href]")
    if b is not None:
        head["Base"] = b.attributes.get("href")
    links = [{"path": "IMG@/src", "url": i.attributes["src"], **({"alt": i.attributes["alt"]} if i.attributes.get("alt") is not None else {})}
             for i in tree.css("img[src]")]
    links += [{"path": "A@/href", "url": a.attributes.get("href") or ""} for a in tree.css("a[href]")]
    doc = {"Container": {"Filename": warc_name, "Compressed": True, "Offset": str(offset)},
           "Envelope": {"Format": "WARC", "WARC-Header-Metadata": {
               "WARC-Type": "response", "WARC-Target-URI": uri, "WARC-Date": "2024-05-20T00:00:00Z",
               "WARC-Record-ID": f"<urn:uuid:{uuid.uuid4()}>"},
               "Payload-Metadata": {"Actual-Content-Type": "application/http; msgtype=response",
                                    "HTTP-Response-Metadata": {"Headers": {"Content-Type": ctype},
                                                               "HTML-Metadata": {"Head": head, "Links": links}}}}}
    return json.dumps(doc).encode()


def build(pages, n: int, tag: int, outdir: Path, fmt: str) -> str:
    """One file of n distinct pages (alt texts and URLs numbered by round `tag` and copy)."""
    path = outdir / f"bench-{tag}.{'warc.wat.gz' if fmt == 'wat' else 'warc.gz'}"
    off = 0
    with open(path, "wb") as f:
        for i in range(n):
            ctype, body = pages[i % len(pages)]
            k = b"%d-%d " % (tag, i)
            body = body.replace(b'alt="', b'alt="' + k).replace(b"alt='", b"alt='" + k)
            uri = f"https://site{i}.example.com/r{tag}/page/{i}.html"
            if fmt == "wat":
                rec = _record("metadata", uri, _wat_json(uri, ctype, body, f"bench-{tag}.warc.gz", off), "application/json")
            else:
                block = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n\r\n".encode("latin-1") + body
                rec = _record("response", uri, block, "application/http; msgtype=response")
            f.write(rec)
            off += len(rec)
    return str(path)


def laion_rows(page_url: str, base: str | None, imgs, seen: set, out: list) -> None:
    """The peer's LAION rules, written as a user of urllib and ftfy would."""
    from urllib.parse import urljoin, urlsplit

    import ftfy

    for src, alt in imgs:
        if not alt or not src:
            continue
        text = " ".join(alt.split())
        if not text.isascii():
            text = ftfy.fix_text(text)
        if len(text) < 5:
            continue
        text = text[:2000]
        src = src.strip()
        if not src or src.startswith("data:"):
            continue
        try:
            url = urljoin(base or page_url, src)
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname or len(parts.hostname) > 60:
            continue
        if parts.path.lower().endswith((".svg", ".gif")):
            continue
        k = (url, text)
        if k not in seen:
            seen.add(k)
            out.append(k)


def peer_warc(path: str) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    pages, seen, out = 0, set(), []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=True):
            if "html" not in (rec.http_headers.get("Content-Type") or ""):
                continue
            pages += 1
            tree = HTMLParser(rec.reader.read())
            b = tree.css_first("base[href]")
            imgs = [(a.get("data-src") or a.get("src"), a.get("alt")) for a in (i.attributes for i in tree.css("img"))]
            laion_rows(rec.headers["WARC-Target-URI"], b.attributes.get("href") if b else None, imgs, seen, out)
    return pages, len(out)


def peer_wat(path: str) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    pages, seen, out = 0, set(), []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.metadata):
            env = json.loads(rec.reader.read())["Envelope"]
            hrm = env["Payload-Metadata"].get("HTTP-Response-Metadata") or {}
            if "html" not in (hrm.get("Headers") or {}).get("Content-Type", ""):
                continue
            pages += 1
            html = hrm.get("HTML-Metadata") or {}
            imgs = [(ln.get("url"), ln.get("alt")) for ln in html.get("Links") or [] if ln.get("path") == "IMG@/src"]
            laion_rows(env["WARC-Header-Metadata"]["WARC-Target-URI"], (html.get("Head") or {}).get("Base"), imgs, seen, out)
    return pages, len(out)


def ours(path: str, fmt: str, main_content: bool = False, *, tolerant_only: bool = False,
         language: bool = True, native_scan: bool = True) -> tuple[int, int]:
    from laion_assets.core.extract import ExtractConfig, extract_shard, htmlscan

    cfg = ExtractConfig(input_format=fmt, main_content_signals=main_content, detect_caption_language=language)
    before = htmlscan.use_native_scan(native_scan)
    try:
        r = extract_shard([path], crawl="BENCH", config=cfg, open_fn=_unseekable if tolerant_only else None)
    finally:
        htmlscan.use_native_scan(before)
    return r.stats["html_pages"], r.stats["pairs_kept"]


class _Unseekable:
    """A local file that says it cannot seek: extract_shard then reads it with the tolerant reader only."""

    def __init__(self, path: str):
        self.f = open(path, "rb")

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def seekable(self) -> bool:
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def _unseekable(path: str) -> _Unseekable:
    return _Unseekable(path)


_STARTUP = {
    "ours": "from laion_assets.core.extract import ExtractConfig, extract_shard; "
            "extract_shard([{p!r}], crawl='X', config=ExtractConfig(input_format={fmt!r}))",
    "peer": "import sys; sys.path.insert(0, {root!r}); import bench.extract as b; b.peer_{fmt}({p!r})",
}


def startup(path: str, fmt: str) -> dict[str, tuple[float, float]]:
    """(CPU s, peak RSS MB) of a fresh process that imports and extracts one small file."""
    import compileall

    compileall.compile_dir(str(ROOT / "laion_assets"), quiet=2)  # as installed wheels are (see module doc)
    compileall.compile_file(str(ROOT / "bench" / "extract.py"), quiet=2)
    res = {}
    tail = ("; import resource as r; u = r.getrusage(r.RUSAGE_SELF); hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
            "print(u.ru_utime + u.ru_stime, int(hwm.split()[1]) / 1024)")
    for name, code in _STARTUP.items():
        out = subprocess.run([sys.executable, "-c", code.format(p=path, fmt=fmt, root=str(ROOT)) + tail], check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        cpu, rss = out.split()[-2:]
        res[name] = (float(cpu), float(rss))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", choices=("warc", "wat"), default="warc")
    ap.add_argument("--pages", type=int, default=1500, help="distinct pages per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trafilatura", action="store_true", help="also price main_content_signals (WARC only)")
    ap.add_argument("--sides", action="store_true",
                    help="also ours with the tolerant reader only, without language id, and with the regex tag scan")
    ap.add_argument("--source", choices=("auto", "real", "generated"), default="auto",
                    help="real: the real WARCs' pages; generated: bench/extract_cores.py's web-like pages; "
                         "auto: real when present, else generated")
    args = ap.parse_args()
    fmt = args.format
    pages = real_pages() if args.source != "generated" else []
    if not pages and args.source == "real":
        raise SystemExit(f"no HTML pages under {REAL} (set LAION_REAL_WARC_DIR to the real-warc folder)")
    source = "real" if pages else "generated"
    if not pages:
        from bench.extract_cores import generated_pages

        pages = generated_pages()
    from laion_assets.core.extract import htmlscan

    if not htmlscan.native_scan_built():
        print("WARNING: the C tag scan (_tagscan) is not built: ours runs the regex scan")
    peer_fn, peer_name = (peer_wat, "fastwarc_json") if fmt == "wat" else (peer_warc, "fastwarc_selectolax")
    print(f"format={fmt} source={source} ({len(pages)} pages) pages_per_round={args.pages} rounds={args.rounds} "
          f"load={os.getloadavg()}")
    tot = {k: [0, 0.0, 0.0, 0] for k in ("ours", peer_name, "ours_trafilatura", "ours_tolerant_reader",
                                         "ours_no_language", "ours_regex_scan")}
    with tempfile.TemporaryDirectory() as tmp:
        small = build(pages, 20, 999, Path(tmp), fmt)
        ours(small, fmt), peer_fn(small)  # imports and the language model: start-up, measured apart below
        if args.trafilatura:
            ours(small, fmt, main_content=True)  # trafilatura's import, outside the clock too
        for r in range(args.rounds):
            path = build(pages, args.pages, r, Path(tmp), fmt)
            sides = [("ours", lambda p: ours(p, fmt)), (peer_name, peer_fn)]
            if args.trafilatura:
                sides.append(("ours_trafilatura", lambda p: ours(p, fmt, main_content=True)))
            if args.sides:
                sides.append(("ours_tolerant_reader", lambda p: ours(p, fmt, tolerant_only=True)))
                sides.append(("ours_no_language", lambda p: ours(p, fmt, language=False)))
                sides.append(("ours_regex_scan", lambda p: ours(p, fmt, native_scan=False)))
            for name, fn in sides if r % 2 == 0 else sides[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                n_pages, n_rows = fn(path)
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                t = tot[name]
                t[0] += n_pages; t[1] += dt; t[2] += cpu; t[3] += n_rows
                print(f"round {r} {name:20s} pages={n_pages} rows={n_rows} wall_s={dt:.2f} cpu_s={cpu:.2f} "
                      f"pages_per_cpu_s={n_pages / cpu:.0f}")
        st = startup(small, fmt)
    for name, (cpu, rss) in st.items():
        print(f"startup {name:5s} cpu_s={cpu:.2f} peak_rss_MB={rss:.0f}  (fresh process, imports + one 20-page file)")
    o, p, t = tot["ours"], tot[peer_name], tot["ours_trafilatura"]
    if t[2]:
        print(f"trafilatura: ours_with_main_content pages_per_cpu_s={t[0] / t[2]:.0f} rows={t[3]} cpu_s={t[2]:.2f} | "
              f"ours_plain cpu_s={o[2]:.2f} | cost_ratio={t[2] / o[2]:.2f} (CPU with / without)")
    for key, label, what in (("ours_tolerant_reader", "reader", "FastWARC reader on / tolerant reader only"),
                             ("ours_no_language", "no_language", "without caption language id / peer"),
                             ("ours_regex_scan", "tagscan", "C tag scan / regex tag scan")):
        t = tot[key]
        if t[2]:
            ratio = (p[2] / p[0]) / (t[2] / t[0]) if label == "no_language" else (t[2] / t[0]) / (o[2] / o[0])
            print(f"{label}: {key} pages_per_cpu_s={t[0] / t[2]:.0f} rows={t[3]} cpu_s={t[2]:.2f} | "
                  f"ratio={ratio:.2f} ({what}, pages per CPU second)")
    po, pp = o[0] / o[2], p[0] / p[2]
    print(f"total ours pages={o[0]} rows={o[3]} wall_s={o[1]:.2f} cpu_s={o[2]:.2f} | {peer_name} rows={p[3]} "
          f"wall_s={p[1]:.2f} cpu_s={p[2]:.2f} | wall_ratio={p[1] / o[1]:.2f} load={os.getloadavg()}")
    print(f"bench: extract pages_per_cpu_s={po:.0f} {peer_name}_pages_per_cpu_s={pp:.0f} ratio={po / pp:.2f}")


if __name__ == "__main__":
    main()
