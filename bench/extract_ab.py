"""Same-run A/B of two checkouts' extract_shard (e.g. main before a change, and this tree), cold.

Each side runs in its own fresh process per file (4 files of 1500 distinct pages, order alternating),
printing start-up CPU (imports + a 20-page file) and extraction CPU apart:
    python bench/extract_ab.py warc|wat /path/to/other/checkout
    (git archive <commit> laion_assets | tar -x -C /tmp/old  makes such a checkout)
Last line: bench: extract_ab extract_cpu_ratio=<other/this> startup_cpu_ratio=<other/this>
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import bench.extract as b  # noqa: E402

fmt, OLD = sys.argv[1], sys.argv[2]
pages = b.real_pages(); tmp = Path(tempfile.mkdtemp())
small = b.build(pages, 20, 99, tmp, fmt)
files = [b.build(pages, 1500, r, tmp, fmt) for r in range(4)]
code = """
import sys, time; sys.path.insert(0, {root!r})
c0 = time.process_time()
from laion_assets.core.extract import extract_shard, ExtractConfig
cfg = ExtractConfig(input_format={fmt!r})
extract_shard([{small!r}], crawl='X', config=cfg)
c1 = time.process_time()
r = extract_shard([{f!r}], crawl='X', config=cfg)
print(c1 - c0, time.process_time() - c1, r.stats['pairs_kept'])
"""
tot = {"old": [0, 0], "new": [0, 0]}
for k, f in enumerate(files):
    for side in (("old", "new") if k % 2 == 0 else ("new", "old")):
        root = OLD if side == "old" else str(ROOT)
        out = subprocess.run([sys.executable, "-c", code.format(root=root, fmt=fmt, small=small, f=f)], capture_output=True, text=True, check=True).stdout.split()
        print(k, side, "startup_cpu", out[0], "extract_cpu", out[1], "rows", out[2], flush=True)
        tot[side][0] += float(out[0]); tot[side][1] += float(out[1])
print("total", tot, "load", os.getloadavg())
print(f"bench: extract_ab extract_cpu_ratio={tot['old'][1] / tot['new'][1]:.3f} startup_cpu_ratio={tot['old'][0] / tot['new'][0]:.2f}")
