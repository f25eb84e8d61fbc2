"""Train the checked-in tiny CLIP ("laion-tiny") on synthetic coloured shapes.

Reproducible and CPU-only (single torch thread, all RNGs seeded). Images go
through the same lossy path as production before the model sees them:
render -> JPEG (q 75-95) -> decode -> resize to 256 keep-ratio (download stage)
-> open_clip's own val preprocess (resize 64, centre crop, normalise).

Loss = standard symmetric CLIP cross-entropy with a learnable logit scale
+ AUX_WEIGHT * calibration term: mean (1 - cos)^2 over matched pairs plus MISMATCH_WEIGHT *
mean max(cos, 0)^2 over fully mismatched pairs (wrong colour AND shape). The term
exists because downstream filtering uses ABSOLUTE cosine thresholds (LAION's
0.28 / 0.26), which the ranking-only contrastive loss does not pin down.

Every batch holds each (colour, shape) combination exactly once, so there are
no false negatives in the contrastive loss.

    python scripts/train_tiny_clip.py --steps 2000 --seed 0 --per-combo 64
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import open_clip  # noqa: E402

from laion_assets.core.sample import synthetic  # noqa: E402
from laion_assets.weights import TINY_CHECKPOINT, TINY_MODEL_NAME, checkpoint_sha256, register_tiny_model  # noqa: E402

AUX_WEIGHT = 1.0
MISMATCH_WEIGHT = 4.0  # extra push on the positive tail of fully mismatched cosines
EVAL_SEED_BASE = 1_000_000_000  # held-out eval seeds; training seeds are < EVAL_SEED_BASE
MATCH_MIN, MISMATCH_MAX = 0.30, 0.24


def download_like(img: Image.Image, rng: random.Random) -> Image.Image:
    """JPEG round trip at random quality, then the download stage's 256 keep-ratio resize."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(75, 95))
    buf.seek(0)
    out = Image.open(buf).convert("RGB")
    w, h = out.size
    s = 256 / max(w, h)
    return out.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)


def build_pool(per_combo: int, seed: int, preprocess) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """Pre-render ``per_combo`` preprocessed images of every combination -> [combos, per_combo, 3, H, W]."""
    combos = list(itertools.product(synthetic.COLORS, synthetic.SHAPES))
    rng = random.Random(seed)
    out = []
    for ci, (c, s) in enumerate(combos):
        imgs = []
        for k in range(per_combo):
            ps = synthetic.pair_seed(seed, ci * per_combo + k)
            size = rng.randint(160, 384)  # source sizes vary; the download stage resizes to 256
            imgs.append(preprocess(download_like(synthetic.render_image(c, s, size=size, seed=ps), rng)))
        out.append(torch.stack(imgs))
    return torch.stack(out), combos


def clip_loss(model, images, tokens, full_mismatch: torch.Tensor):
    img = F.normalize(model.encode_image(images), dim=-1)
    txt = F.normalize(model.encode_text(tokens), dim=-1)
    cos = img @ txt.t()
    logits = model.logit_scale.exp().clamp(max=100) * cos
    labels = torch.arange(len(images))
    ce = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    aux = ((1 - cos.diagonal()) ** 2).mean() + MISMATCH_WEIGHT * (cos[full_mismatch].clamp(min=0) ** 2).mean()
    return ce + AUX_WEIGHT * aux, ce, aux


@torch.no_grad()
def evaluate(model, preprocess, tokenizer, n: int = 512, seed: int = EVAL_SEED_BASE) -> dict:
    """Cosine of (image, own caption) and (image, fully mismatched caption) on held-out pairs."""
    model.eval()
    rng = random.Random(seed)
    pairs = synthetic.sample_pairs(n, seed=seed)
    imgs = torch.stack([preprocess(download_like(p.image, rng)) for p in pairs])
    bad = [synthetic.mismatched(p.color, p.shape, seed=seed + i) for i, p in enumerate(pairs)]
    bad_txt = [synthetic.caption(c, s, seed=seed + i) for i, (c, s) in enumerate(bad)]
    ie = F.normalize(model.encode_image(imgs), dim=-1)
    good = (ie * F.normalize(model.encode_text(tokenizer([p.text for p in pairs])), dim=-1)).sum(-1)
    wrong = (ie * F.normalize(model.encode_text(tokenizer(bad_txt)), dim=-1)).sum(-1)
    return {
        "n": n,
        "matched_min": good.min().item(),
        "matched_p01": good.quantile(0.01).item(),
        "matched_median": good.median().item(),
        "mismatched_median": wrong.median().item(),
        "mismatched_p99": wrong.quantile(0.99).item(),
        "mismatched_max": wrong.max().item(),
        "frac_matched_ge_0.30": (good >= MATCH_MIN).float().mean().item(),
        "frac_mismatched_lt_0.24": (wrong < MISMATCH_MAX).float().mean().item(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-combo", type=int, default=48, help="pre-rendered images per (colour, shape)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", type=Path, default=TINY_CHECKPOINT)
    ap.add_argument("--eval-n", type=int, default=512)
    args = ap.parse_args(argv)

    t0 = time.time()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    register_tiny_model()
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL_NAME)
    tokenizer = open_clip.get_tokenizer(TINY_MODEL_NAME)
    print(f"params: {sum(p.numel() for p in model.parameters()):,}")

    pool, combos = build_pool(args.per_combo, args.seed, preprocess)
    print(f"pool {tuple(pool.shape)} rendered in {time.time() - t0:.1f}s", flush=True)
    ncombo = len(combos)
    colors = torch.tensor([list(synthetic.COLORS).index(c) for c, _ in combos])
    shapes = torch.tensor([synthetic.SHAPES.index(s) for _, s in combos])
    full_mismatch = (colors[:, None] != colors[None, :]) & (shapes[:, None] != shapes[None, :])

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    warm = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / args.steps)))
    )
    gen = torch.Generator().manual_seed(args.seed)
    trng = random.Random(args.seed + 1)
    model.train()
    for step in range(args.steps):
        idx = torch.randint(0, args.per_combo, (ncombo,), generator=gen)
        images = pool[torch.arange(ncombo), idx]
        flip = torch.rand(ncombo, generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        texts = [synthetic.caption(c, s, seed=trng.randrange(EVAL_SEED_BASE)) for c, s in combos]
        loss, ce, aux = clip_loss(model, images, tokenizer(texts), full_mismatch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d} loss {loss.item():.4f} ce {ce.item():.4f} aux {aux.item():.4f} "
                  f"scale {model.logit_scale.exp().item():.1f} t={time.time() - t0:.0f}s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().half() for k, v in model.state_dict().items()}, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) sha256 {checkpoint_sha256(args.out)}")

    # Evaluate the file as shipped (fp16 -> fp32), through the public loading path.
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL_NAME, pretrained=str(args.out))
    metrics = evaluate(model, preprocess, tokenizer, n=args.eval_n)
    for k, v in metrics.items():
        print(f"heldout {k}: {v:.4f}" if isinstance(v, float) else f"heldout {k}: {v}")
    print(f"total time {time.time() - t0:.0f}s")
    ok = metrics["frac_matched_ge_0.30"] >= 0.99 and metrics["frac_mismatched_lt_0.24"] >= 0.99
    print("TARGET MET" if ok else "TARGET NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
