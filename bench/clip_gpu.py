"""Bench: the CLIP stage end to end (tar -> similarity written) next to the model's pure forward.

    python bench/clip_gpu.py --n 65536 --batch-size 1024          # one H100 (see docs/clip.md)
    python bench/clip_gpu.py --n 64 --batch-size 16 --workers 1   # CPU smoke run

ViT-B-32 with random weights (`--pretrained none`: the cost is the architecture's, not the weights')
over WebDataset tars of textured JPEGs generated here at the download stage's size (256 px on the
short side, mixed aspect ratios). Pipeline = `ClipScorer.score_shard` (tar index, worker read and
decode or nvJPEG, resize, tokenize, forward, safety tags, embeddings) plus writing the scores
parquet; forward-only = the same model, batch size and precision on tensors already on the device.
GPU utilization is sampled during the pipeline run when `torch.cuda.utilization` works (pynvml).
Last line: `bench: clip_gpu images_per_s=<...> forward_only_images_per_s=<...> ratio=<...>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laion_assets.core.clip import ClipConfig, ClipScorer  # noqa: E402
from laion_assets.testing.clip_fixtures import Sample, jpeg_bytes, write_shard  # noqa: E402
from laion_assets.core.clip.text import trim_tokens  # noqa: E402
from laion_assets.core.lib.cpus import available_cpus  # noqa: E402

ASPECTS = (1.0, 1.0, 4 / 3, 3 / 4, 3 / 2, 16 / 9)


def _jpeg(i: int) -> bytes:
    """A 256 px (short side) textured JPEG, like a pre-resized download; deterministic in i."""
    from laion_assets.core.sample import synthetic

    colors = list(synthetic.COLORS)
    img = synthetic.render_image(colors[i % len(colors)], synthetic.SHAPES[i % len(synthetic.SHAPES)],
                                 size=256, seed=i)
    a = ASPECTS[i % len(ASPECTS)]
    if a != 1.0:
        w, h = (round(256 * a), 256) if a > 1 else (256, round(256 / a))
        img = img.resize((w, h))
    return jpeg_bytes(img, quality=90)


def make_shard(root: Path, n: int, per_tar: int, unique: int):
    """n samples over `unique` distinct JPEGs (rendering is the slow part), tars of per_tar members."""
    with ProcessPoolExecutor(max(1, available_cpus())) as pool:
        blobs = list(pool.map(_jpeg, range(min(n, unique)), chunksize=16))
    samples = [Sample(f"{i:09d}", blobs[i % len(blobs)], f"a photo of thing number {i} on a table", "en")
               for i in range(n)]
    return write_shard(root / "images", samples, per_tar=per_tar)


class UtilizationSampler(threading.Thread):
    """Samples torch.cuda.utilization() (percent of time a kernel ran) every `period_s`."""

    def __init__(self, period_s: float = 0.1):
        super().__init__(daemon=True)
        self.period_s, self.samples, self.stop = period_s, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # no pynvml / no NVML: report n/a
                return
            time.sleep(self.period_s)

    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.0f}%" if self.samples else "n/a"


def forward_only(scorer: ClipScorer, tokens: torch.Tensor, n: int, batch_size: int) -> float:
    """images/s of image + text encode (+ similarity) on ready device tensors, same batch size."""
    lm = scorer.loaded
    h, w = lm.preprocess_cfg["size"]
    x = torch.randn(batch_size, 3, h, w, device=lm.device).to(next(lm.model.parameters()).dtype)
    tok = trim_tokens(lm.model, tokens[:batch_size]).to(lm.device)
    scorer._forward(x, tok)  # warm
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    sync()
    done, t0 = 0, time.perf_counter()
    while done < n:
        img, txt = scorer._forward(x, tok)
        (img * txt).sum(dim=-1)  # the similarity, as the pipeline computes it
        done += batch_size
    sync()
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=65536, help="images in the shard")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default: cores - 1, max 16)")
    ap.add_argument("--decode", default="auto", choices=["auto", "workers", "device"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--per-tar", type=int, default=10_000)
    ap.add_argument("--unique-images", type=int, default=4096, help="distinct JPEGs rendered (reused)")
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="none")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from laion_assets.weights import register_tiny_model

    register_tiny_model()  # `--model laion-tiny` is how the test runs this script quickly
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    cfg = ClipConfig(model_name=args.model, pretrained=pretrained, device=args.device, precision=args.precision,
                     batch_size=args.batch_size, num_workers=args.workers, decode=args.decode)
    t0 = time.perf_counter()
    scorer = ClipScorer(cfg).load()
    load_s = time.perf_counter() - t0
    bs = scorer.batch_size
    dev = scorer.loaded.device
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        downloads, pairs = make_shard(root, args.n, args.per_tar, args.unique_images)
        gen_s = time.perf_counter() - t0
        # warm-up: CUDA context, kernels, allocator, first worker fork (a long-lived scorer pays it once)
        scorer.score_shard(root / "images", downloads.slice(0, min(args.n, 2 * bs)), pairs, root / "warm")
        sampler = UtilizationSampler()
        if dev.type == "cuda":
            torch.cuda.synchronize()
            sampler.start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        res = scorer.score_shard(root / "images", downloads, pairs, root / "emb")
        pq.write_table(res.table, root / "scores.parquet")  # "similarity written"
        pipeline_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        sampler.stop.set()
        tokens = scorer.loaded.tokenizer(pairs["text"].to_pylist()[:bs])
        fwd = forward_only(scorer, tokens, max(4 * bs, min(args.n, 16 * bs)), bs)
    images_per_s = res.stats["scored"] / pipeline_s
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu({available_cpus()} cpus)"
    st = res.stats
    print(f"device={dev_name} model={scorer.model_id} dtype={scorer.loaded.dtype_name} batch_size={bs} "
          f"workers={st['num_workers']} decode={st['decode']} images={st['scored']} load_s={load_s:.2f} "
          f"generate_s={gen_s:.1f}")
    print(f"pipeline: wall_s={pipeline_s:.2f} process_cpu_s={cpu_s:.2f} (main + threads; workers not counted) "
          f"input_wait_s={st['input_wait_s']} setup_s={st['setup_s']} main_thread_cpu_s={st['main_thread_cpu_s']} "
          f"main_thread_overhead_us_per_image={st['main_thread_overhead_us_per_image']} "
          f"text_tokens_kept_ratio={st['text_tokens_kept_ratio']} gpu_utilization={sampler.mean()} "
          f"load={os.getloadavg()[0]:.2f}")
    print(f"bench: clip_gpu images_per_s={images_per_s:.1f} forward_only_images_per_s={fwd:.1f} "
          f"ratio={images_per_s / fwd:.2f}")


if __name__ == "__main__":
    main()
