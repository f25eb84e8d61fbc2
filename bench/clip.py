"""Bench: CLIP scoring throughput, pipelined (ClipScorer) vs a plain one-thread loop, same run.

    python bench/clip.py --model ViT-B-32 --pretrained none --n 256 --batch-size 32

Both paths use the same loaded model, device, batch size and torch intra-op threads; they differ only
in the input pipeline (worker processes decoding + resizing uint8 crops, pinned, non_blocking, GPU
nvJPEG on CUDA; vs. read -> PIL decode -> open_clip preprocess -> encode, serially). It also times
the two halves alone (decode+preprocess on one core; model forward on ready tensors) to name the
bound. Last line: `bench: clip images_per_s=... baseline_images_per_s=... ratio=... device=...`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laion_assets.core.clip import ClipConfig, ClipScorer  # noqa: E402
from laion_assets.testing.clip_fixtures import Sample, write_shard  # noqa: E402
from laion_assets.core.clip.inputs import Normalizer, decode_cpu, index_tar, normalize, resize_crop  # noqa: E402
from laion_assets.core.clip.text import encode_text, trim_tokens  # noqa: E402
from laion_assets.core.lib.cpus import available_cpus  # noqa: E402


# web-like alt texts of mixed length (the text tower's cost depends on it once padding is trimmed)
CAPTIONS = ("Red {i}", "a photo of thing number {i}", "Handmade ceramic coffee mug with blue glaze, 350 ml, item {i}",
            "IMG_{i}", "Aerial view of the old harbour at sunset with fishing boats and the lighthouse in the distance")


def synthetic_image(i: int, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """Noisy textured 256 px images, so JPEG decode costs what a real pre-resized download costs."""
    try:
        from laion_assets.core.sample.synthetic import COLORS, SHAPES, render_image

        colors = list(COLORS)
        return render_image(colors[i % len(colors)], SHAPES[i % len(SHAPES)], size=size, seed=i)
    except ImportError:
        h = size if i % 3 else int(size * 1.33)  # some non-square ones
        noise = rng.integers(60, 200, size=(h, size, 3), dtype=np.uint8)
        im = Image.fromarray(noise)
        ImageDraw.Draw(im).ellipse([40, 40, 180, 180], fill=tuple(int(x) for x in rng.integers(0, 255, 3)))
        return im


def plain_loop(scorer: ClipScorer, images_dir: Path, downloads, pairs, batch_size: int) -> tuple[int, float]:
    """The naive loop: one thread reads, decodes (PIL), preprocesses (open_clip), encodes, batch by batch."""
    lm = scorer.loaded
    texts = dict(zip(pairs["key"].to_pylist(), pairs["text"].to_pylist()))
    rows = [(k, t, m) for k, s, t, m in zip(downloads["key"].to_pylist(), downloads["status"].to_pylist(),
                                            downloads["tar_path"].to_pylist(), downloads["tar_member"].to_pylist())
            if s == "ok"]
    t0 = time.perf_counter()
    n = 0
    tars: dict[str, tarfile.TarFile] = {}
    for b in range(0, len(rows), batch_size):
        imgs, caps = [], []
        for key, tar, member in rows[b : b + batch_size]:
            tf = tars.get(tar) or tars.setdefault(tar, tarfile.open(images_dir / tar))
            data = tf.extractfile(member).read()
            with Image.open(io.BytesIO(data)) as im:
                imgs.append(lm.preprocess(im.convert("RGB")))
            caps.append(texts[key])
        x = torch.stack(imgs).to(lm.device)
        tok = lm.tokenizer(caps).to(lm.device)
        with torch.inference_mode(), lm.autocast():
            ie = torch.nn.functional.normalize(lm.model.encode_image(x).float(), dim=-1)
            te = torch.nn.functional.normalize(lm.model.encode_text(tok).float(), dim=-1)
            _ = (ie * te).sum(-1).cpu()
        n += len(imgs)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def decode_only(images_dir: Path, pp: dict, limit: int) -> float:
    """images/s of the worker's decode + resize/crop on one core (the CPU input bound per core)."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tar = images_dir / "00000.tar"
    idx = [v for k, v in index_tar(tar).items() if k.endswith(".jpg")][:limit]
    with open(tar, "rb") as f:
        blobs = [os.pread(f.fileno(), size, off) for off, size in idx]
    t0 = time.perf_counter()
    for b in blobs:
        resize_crop(decode_cpu(b), pp)
    dt = time.perf_counter() - t0
    torch.set_num_threads(torch_threads)
    return len(blobs) / dt


def model_only(scorer: ClipScorer, n: int, batch_size: int) -> float:
    """images/s of image+text encode on ready device tensors (the model bound)."""
    lm = scorer.loaded
    h, w = lm.preprocess_cfg["size"]
    x = torch.randn(batch_size, 3, h, w, device=lm.device)
    tok = trim_tokens(lm.model, lm.tokenizer(["a photo of a red circle"] * batch_size)).to(lm.device)
    done, t0 = 0, time.perf_counter()
    while done < n:
        scorer._forward(x, tok)
        done += batch_size
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def levers(scorer: ClipScorer, captions: list[str], batch_size: int) -> str:
    """Each compute lever alone, on this device, same batch: seconds per batch, best of 3."""
    lm = scorer.loaded
    model = lm.model
    h, w = lm.preprocess_cfg["size"]
    tokens = lm.tokenizer(captions[:batch_size]).to(lm.device)
    short = trim_tokens(model, tokens)
    x = torch.randn(batch_size, 3, h, w, device=lm.device)
    u8 = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, device=lm.device)
    out = {}
    with torch.inference_mode():
        out["text_full_s"] = _best_of(lambda: model.encode_text(tokens))
        out["text_trimmed_s"] = _best_of(lambda: encode_text(model, short))
        out["image_s"] = _best_of(lambda: model.encode_image(x))
        xcl = x.contiguous(memory_format=torch.channels_last)
        model.visual.to(memory_format=torch.channels_last)
        out["image_channels_last_s"] = _best_of(lambda: model.visual(xcl))
        model.visual.to(memory_format=torch.contiguous_format)
        if lm.device.type == "cpu":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out["image_bf16_autocast_s"] = _best_of(lambda: model.encode_image(x))
        norm = Normalizer(lm.preprocess_cfg, lm.device)
        out["normalize_cached_s"] = _best_of(lambda: norm(u8), 5)
        out["normalize_rebuilt_s"] = _best_of(lambda: normalize(u8, lm.preprocess_cfg), 5)
    out["tokens_kept"] = f"{short.shape[1]}/{tokens.shape[1]}"
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--model-config", default=None, help="open_clip JSON config to register first")
    ap.add_argument("--pretrained", default="none", help="tag, checkpoint path, or 'none' (random weights)")
    ap.add_argument("--n", type=int, default=256, help="images in the synthetic shard")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: cores - workers, at least 1)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--decode", default="auto")
    ap.add_argument("--levers", action="store_true", help="also time each compute lever alone")
    args = ap.parse_args()
    cores = available_cpus()
    workers = args.workers if args.workers is not None else max(1, min(16, cores - 1))
    # intra-op threads get the cores the decode workers leave; oversubscribing a small CPU box costs
    # 2x+ (spinning OpenMP threads), measured on the 2-core dev box.
    torch.set_num_threads(args.threads or max(1, cores - workers))
    if args.model_config:
        import open_clip

        open_clip.add_model_config(args.model_config)
    elif args.model == "laion-tiny":
        from laion_assets.weights import register_tiny_model

        register_tiny_model()
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    cfg = ClipConfig(model_name=args.model, pretrained=pretrained, device=args.device, batch_size=args.batch_size,
                     num_workers=workers, decode=args.decode)
    scorer = ClipScorer(cfg).load()
    bs = scorer.batch_size
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        images_dir = Path(tmp) / "images"
        samples = [Sample(f"{i:09d}", synthetic_image(i, rng), CAPTIONS[i % len(CAPTIONS)].format(i=i), "en")
                   for i in range(args.n)]
        downloads, pairs = write_shard(images_dir, samples, per_tar=max(1, args.n // 2))
        jpeg_kb = sum(b for b in downloads["bytes"].to_pylist()) / len(samples) / 1024
        # warm-up (first forwards allocate, autotune, fork the first workers)
        scorer.score_shard(images_dir, downloads.slice(0, bs), pairs, Path(tmp) / "warm")
        dec = decode_only(images_dir, scorer.loaded.preprocess_cfg, min(args.n, 200))
        mdl = model_only(scorer, min(args.n, 4 * bs), bs)
        res = scorer.score_shard(images_dir, downloads, pairs, Path(tmp) / "out")
        pipelined = res.stats["scored"] / res.stats["elapsed_s"]
        lever_line = levers(scorer, pairs["text"].to_pylist(), bs) if args.levers else None
        n_plain, t_plain = plain_loop(scorer, images_dir, downloads, pairs, bs)
        baseline = n_plain / t_plain
    dev = scorer.loaded.device
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu({cores} cpus)"
    cores_used = res.stats["num_workers"] or 1
    bound = "model" if mdl < dec * cores_used else "input"
    print(f"model={scorer.model_id} weights={scorer.weights_id} batch_size={bs} workers={res.stats['num_workers']} "
          f"torch_threads={torch.get_num_threads()} decode={res.stats['decode']} dtype={scorer.loaded.dtype_name} "
          f"images={args.n} avg_jpeg_kb={jpeg_kb:.1f} oom_splits={res.stats['oom_splits']} "
          f"pipelined_elapsed_s={res.stats['elapsed_s']} input_wait_s={res.stats['input_wait_s']}")
    print(f"components: decode+resize_per_core_images_per_s={dec:.1f} model_only_images_per_s={mdl:.1f} "
          f"bound={bound} pipelined/model_only={pipelined / mdl:.2f}")
    # the main thread's own CPU per image, outside device work: on a GPU this is the stage's ceiling
    # (1e6 / us images/s); target < 20 us
    st = res.stats
    print(f"main_thread: cpu_s={st['main_thread_cpu_s']} device_work_cpu_s={st['device_work_cpu_s']} "
          f"device_decode_cpu_s={st['device_decode_cpu_s']} overhead_us_per_image={st['main_thread_overhead_us_per_image']} "
          f"ceiling_images_per_s={1e6 / max(st['main_thread_overhead_us_per_image'], 1e-3):.0f} "
          f"text_tokens_kept_ratio={st['text_tokens_kept_ratio']} load={os.getloadavg()[0]:.2f}")
    if lever_line:
        print(f"levers: {lever_line}")
    print(f"bench: clip images_per_s={pipelined:.1f} baseline_images_per_s={baseline:.1f} "
          f"ratio={pipelined / baseline:.2f} main_thread_us_per_image={st['main_thread_overhead_us_per_image']} "
          f"device={dev_name}")


if __name__ == "__main__":
    main()
