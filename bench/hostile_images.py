"""Time and peak memory of one decode per hostile image, each in a fresh process (issue 19).

`python bench/hostile_images.py [--old PATH_TO_OLD_RESIZER]` prints one line per case and a bench line;
the peak is the decoding process's VmHWM less its VmHWM before the case (interpreter + imports).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import multiprocessing as mp
import re
import sys
import time

from PIL import Image


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def _case(name: str, data: bytes, resizer_path: str | None, q) -> None:
    if resizer_path:
        spec = importlib.util.spec_from_file_location("old_resizer", resizer_path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["old_resizer"] = mod
        spec.loader.exec_module(mod)
        process_image = mod.process_image
    else:
        from laion_assets.core.download.resizer import process_image
    base = _hwm_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        process_image(data, image_size=256)
        outcome = "ok"
    except Exception as e:  # noqa: BLE001
        outcome = getattr(e, "reason", type(e).__name__)
    q.put((name, outcome, time.perf_counter() - t0, time.process_time() - c0, _hwm_mb() - base, len(data)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default=None, help="path of the resizer.py to compare (before)")
    ap.add_argument("--cases", default="rgba_8000,rgb_4000,scans_4000x20000")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    from laion_assets_tests.core.test_download_bombs import many_scans_jpeg, png
    made = {"rgba_8000": lambda: png(8000, 8000, "RGBA"), "rgb_4000": lambda: png(4000, 4000),
            "scans_4000x20000": lambda: many_scans_jpeg(4000, 20_000)}
    inputs = {name: made[name]() for name in args.cases.split(",")}
    peaks = {}
    for label, path in (("new", None), ("old", args.old)) if args.old else (("new", None),):
        for name in args.cases.split(","):
            q = ctx.Queue()
            p = ctx.Process(target=_case, args=(name, inputs[name], path, q))
            p.start()
            name, outcome, wall, cpu, peak, size = q.get()
            p.join()
            peaks[(label, name)] = peak
            print(f"{label} {name}: {outcome} wall={wall:.2f}s cpu={cpu:.2f}s peak_mb={peak:.0f} bytes={size}")
    if args.old:
        r = peaks[("old", "rgba_8000")] / max(1.0, peaks[("new", "rgba_8000")])
        print(f"bench: hostile_images rgba_8000_peak_mb_new={peaks[('new', 'rgba_8000')]:.0f} "
              f"old={peaks[('old', 'rgba_8000')]:.0f} ratio={r:.2f}")


if __name__ == "__main__":
    main()
