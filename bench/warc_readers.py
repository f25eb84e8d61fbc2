"""Does the hand-written WARC reader earn its place? Speed and tolerance next to warcio and FastWARC.

Speed: records/s reading every record's full block from the same per-record-gzip WARC (bench/extract.py's
copies of the real pages), each reader in the same run, CPU time beside wall time. Tolerance: for each
archive quirk of issue 10 (written here byte by byte), how many of the file's good records each reader
yields without raising. "ours" here is the tolerant reader alone (`warc.iter_records`); since issue 22
extraction reads with `fastread.read_records` (FastWARC, proved per record, this reader as fallback).
FastWARC is a project dependency since issue 22.

    python bench/warc_readers.py [--pages 3000]
Last line: bench: warc_readers records_per_s=<ours> warcio_records_per_s=<warcio> ratio=<ours/warcio>
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def ours(f) -> int:
    from laion_assets.core.extract.warc import Record, iter_records

    n = 0
    for r in iter_records(f):
        if isinstance(r, Record):
            n += 1
    return n


def warcio_reader(f) -> int:
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    for rec in ArchiveIterator(f, arc2warc=True):
        rec.raw_stream.read()
        n += 1
    return n


def fastwarc_reader(f) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    for rec in ArchiveIterator(f, record_types=WarcRecordType.any_type, parse_http=False):
        rec.reader.read()
        n += 1
    return n


def readers() -> dict:
    out = {"ours": ours, "warcio": warcio_reader}
    try:
        import fastwarc  # noqa: F401

        out["fastwarc"] = fastwarc_reader
    except ImportError:
        print("fastwarc not importable: left out (a project dependency: pip install -e . installs it)")
    return out


def quirk_files() -> dict[str, tuple[bytes, int]]:
    """(file bytes, good records in it) per archive quirk."""
    from laion_assets_tests.core.extract._extract_warcgen import gz, http_response, page, record
    from laion_assets_tests.core.extract.test_extract_archives import arc_file

    html = '<html><body><img src="/a.jpg" alt="A sleepy orange cat"></body></html>'
    recs = [record("response", f"http://{h}.com/", http_response(html.encode(), "text/html"))[:-4] for h in "abc"]
    std = b"".join(gz(r + b"\r\n\r\n") for r in recs)
    return {
        "standard (per-record gzip)": (std, 3),
        "one LF between records": (b"".join(gz(r + b"\n") for r in recs), 3),
        "no separator between records": (b"".join(gz(r) for r in recs), 3),
        "NULs between records (plain)": (b"".join(r + b"\x00\x00\x00\r\n\r\n" for r in recs), 3),
        "whole-file gzip": (gzip.compress(b"".join(r + b"\r\n\r\n" for r in recs), mtime=0), 3),
        "ARC v1, per-record gzip": (arc_file(1, "record"), 5),
        "ARC v2, plain": (arc_file(2, "none"), 5),
        "file cut inside last record": (b"".join(r + b"\r\n\r\n" for r in recs)[:-60], 3),
        "garbage between records": (gz(recs[0] + b"\r\n\r\n") + b"junk\r\n" * 50 + gz(recs[1] + b"\r\n\r\n"), 2),
        "lying Content-Length (+25)": (gz(recs[0] + b"\r\n\r\n") + gz(recs[1].replace(b"Content-Length: ", b"Content-Length: 9") + b"\r\n\r\n")
                                       + gz(recs[2] + b"\r\n\r\n"), 2),
        "bare-LF HTTP headers": (gz(record("response", "http://a.com/", b"HTTP/1.1 200 OK\nContent-Type: text/html\n\n" + html.encode())), 1),
        "page record dwarfed by its gzip member": (gz(recs[0] + b"\r\n\r\n" + b"\x00" * (8 << 20)) + gz(recs[1] + b"\r\n\r\n"), 2),
    }


def tolerance(rs: dict) -> None:
    print("\ntolerance: good records yielded / good records in the file (exception -> 'raises')")
    print(f"{'quirk':42s}" + "".join(f"{n:>12s}" for n in rs))
    for name, (data, good) in quirk_files().items():
        cells = []
        for fn in rs.values():
            try:
                got = fn(io.BytesIO(data))
                cells.append(f"{min(got, good)}/{good}" + ("+" if got > good else ""))
            except Exception as e:  # noqa: BLE001
                cells.append("raises")
                del e
        print(f"{name:42s}" + "".join(f"{c:>12s}" for c in cells))
    print("('+': more records than the file holds, e.g. garbage read as a record)")


def speed(rs: dict, pages: int) -> dict[str, float]:
    import extract as bench_extract  # bench/extract.py

    with tempfile.TemporaryDirectory() as tmp:
        [path] = bench_extract.build_warcs(pages, 1, Path(tmp))
        print(f"file: {pages} records, {os.path.getsize(path) / 1e6:.1f} MB compressed; load: {os.getloadavg()}")
        out = {}
        for name, fn in rs.items():
            best = None
            for _ in range(3):
                with open(path, "rb") as f:
                    t0, c0 = time.perf_counter(), time.process_time()
                    n = fn(f)
                    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                best = min(best or (dt, cpu), (dt, cpu))
            out[name] = n / best[1]
            print(f"{name:10s} records={n} wall_s={best[0]:.3f} cpu_s={best[1]:.3f} records_per_cpu_s={n / best[1]:.0f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=3000)
    args = ap.parse_args()
    rs = readers()
    tolerance(rs)
    print()
    sp = speed(rs, args.pages)
    print(f"bench: warc_readers records_per_s={sp['ours']:.0f} warcio_records_per_s={sp['warcio']:.0f} "
          f"ratio={sp['ours'] / sp['warcio']:.2f}")


if __name__ == "__main__":
    main()
