"""Synthetic image-text pairs: coloured shapes on textured backgrounds.

Used to train the checked-in tiny CLIP (``laion_assets.weights``) and to feed the
offline demo / tests with images that survive the real download filters (the
download stage rejects JPEGs under 5000 bytes, as LAION did), so the backgrounds
are noisy on purpose. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Saturated / extreme colours; backgrounds are low-saturation mid greys so no
# colour here can be confused with the background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 30),
    "green": (30, 165, 45),
    "blue": (30, 60, 215),
    "yellow": (240, 215, 20),
    "purple": (135, 35, 175),
    "orange": (245, 125, 15),
    "black": (12, 12, 12),
    "white": (248, 248, 248),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

_TEMPLATES: tuple[str, ...] = (
    "{a} {c} {s}",
    "a photo of {a} {c} {s}",
    "{c} {s} on a textured background",
    "an image of {a} {c} {s}",
    "a picture of {a} {c} {s}",
    "a {s} that is {c}",
)


@dataclass(frozen=True)
class SyntheticPair:
    """One rendered (image, caption) pair with its ground-truth labels."""

    color: str
    shape: str
    image: Image.Image
    text: str


def _check(color: str, shape: str) -> None:
    if color not in COLORS:
        raise ValueError(f"unknown color {color!r}; expected one of {sorted(COLORS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _polygon(shape: str, r: float) -> list[tuple[float, float]]:
    """Vertices (centred on the origin, unrotated) of the polygonal shapes."""
    if shape == "square":
        h = r * 0.8
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        return [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return pts
    if shape == "cross":
        t = r * 0.32
        return [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t), (-r, -t), (-t, -t)]
    raise ValueError(shape)


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    """Anti-aliased 'L' mask of the shape (drawn at 2x, then downsampled)."""
    ss = 2
    mask = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = cx * ss, cy * ss, r * ss
    if shape in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if shape == "ring":
            ri = r * 0.6
            draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    else:
        ca, sa = math.cos(angle), math.sin(angle)
        pts = [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in _polygon(shape, r)]
        draw.polygon(pts, fill=255)
    return mask.resize((size, size), Image.Resampling.BILINEAR)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-saturation mid-grey blotchy texture (float32 HxWx3, 0..255)."""
    grid = int(rng.integers(3, 9))
    base = rng.uniform(75, 180)
    tint = rng.uniform(-18, 18, size=3)
    cells = base + tint + rng.normal(0, 16, size=(grid, grid, 3))
    cells = np.clip(cells, 55, 200).astype(np.uint8)
    smooth = Image.fromarray(cells, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(smooth, dtype=np.float32)


def render_image(color: str, shape: str, *, size: int = 256, seed: int) -> Image.Image:
    """Render ``shape`` in ``color`` at a random position/scale/rotation on a noisy background.

    The per-pixel noise keeps a 256x256 JPEG (quality 90) well above 5000 bytes.
    """
    _check(color, shape)
    rng = np.random.default_rng(seed)
    img = _background(rng, size)
    r = float(rng.uniform(0.2, 0.36)) * size
    cx = float(rng.uniform(r, size - r))
    cy = float(rng.uniform(r, size - r))
    angle = float(rng.uniform(0, 2 * math.pi))
    mask = np.asarray(_shape_mask(shape, size, cx, cy, r, angle), dtype=np.float32)[..., None] / 255.0
    fg = np.array(COLORS[color], dtype=np.float32) + rng.uniform(-12, 12, size=3)
    img = img * (1.0 - mask) + fg * mask
    img = img + rng.normal(0, 10, size=img.shape)  # sensor-like noise over everything
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(color: str, shape: str, *, seed: int) -> str:
    """English caption for the pair, template chosen by ``seed``."""
    _check(color, shape)
    tpl = random.Random(seed).choice(_TEMPLATES)
    return tpl.format(a=_article(color), c=color, s=shape)


def mismatched(color: str, shape: str, *, seed: int) -> tuple[str, str]:
    """A (color, shape) pair that differs from the given one in BOTH colour and shape."""
    _check(color, shape)
    rng = random.Random(seed)
    return (
        rng.choice([c for c in COLORS if c != color]),
        rng.choice([s for s in SHAPES if s != shape]),
    )


def pair_seed(seed: int, index: int) -> int:
    """Derived per-item seed, distinct across (seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def sample_pairs(n: int, *, seed: int, size: int = 256) -> list[SyntheticPair]:
    """``n`` random pairs; different ``seed`` values give different images and captions."""
    rng = random.Random(seed)
    colors = list(COLORS)
    out = []
    for i in range(n):
        c, s = rng.choice(colors), rng.choice(SHAPES)
        ps = pair_seed(seed, i)
        out.append(SyntheticPair(c, s, render_image(c, s, size=size, seed=ps), caption(c, s, seed=ps)))
    return out
