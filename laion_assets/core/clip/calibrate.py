"""Pick a similarity threshold for a new model so it keeps the same share of a sample as a reference.

Both models score the same pairs; the reference keeps the share `p` of them at its own thresholds
(from the table, per row: model, language, reliability); the new model's threshold is the score
that keeps the same share `p` of the same pairs (a quantile match). The output is a table row to
review and paste into `thresholds.py`, with the agreement of the two kept sets beside it (a low
overlap says the models disagree on *which* pairs are good, not only on the scale).

    python -m laion_assets.core.clip.calibrate --model ViT-B-32 --pretrained laion2b_s34b_b79k \\
        --reference-model ViT-B-32 --reference-pretrained openai --root data --partition CC-MAIN-2024-10/00000

`--synthetic N` scores N generated pairs (half matching, half mismatched captions) instead of a shard.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from laion_assets.core.clip.thresholds import ModelThresholds, random_init_thresholds


@dataclass(frozen=True)
class Calibration:
    model_id: str
    reference_model_id: str
    threshold: float
    pairs: int
    kept_share: float  # share of the sample the reference keeps, and the new model at `threshold`
    kept_by_reference: int
    kept_by_model: int
    kept_by_both: int  # agreement on which pairs, not only how many


def match_share(reference_scores: np.ndarray, reference_thresholds: np.ndarray, scores: np.ndarray) -> float:
    """The threshold at which `scores` keep as many pairs as the reference keeps at its thresholds.

    Halfway between the last kept and the first dropped score, so float noise cannot flip either.
    """
    n = len(scores)
    if n == 0 or len(reference_scores) != n or len(reference_thresholds) != n:
        raise ValueError(f"need the same non-empty pairs scored by both models (got {len(reference_scores)}, {n})")
    k = int(np.sum(reference_scores >= reference_thresholds))
    ranked = np.sort(np.asarray(scores, np.float64))[::-1]
    if k == 0:
        return float(np.nextafter(ranked[0], np.inf))  # keep none: just above the best score
    if k == n:
        return float(ranked[-1])
    return float((ranked[k - 1] + ranked[k]) / 2)


def calibrate(reference: pa.Table, new: pa.Table) -> Calibration:
    """`reference`, `new`: score tables (SCORE_SCHEMA) of the same shard; pairs scored by both count."""
    ref = {k: (s, t) for k, st, s, t in zip(reference["key"].to_pylist(), reference["status"].to_pylist(),
                                           reference["similarity"].to_pylist(), reference["threshold"].to_pylist())
           if st == "scored"}
    mine = {k: s for k, st, s in zip(new["key"].to_pylist(), new["status"].to_pylist(), new["similarity"].to_pylist())
            if st == "scored" and k in ref}
    keys = sorted(mine)
    r_s = np.array([ref[k][0] for k in keys], np.float64)
    r_t = np.array([ref[k][1] for k in keys], np.float64)
    n_s = np.array([mine[k] for k in keys], np.float64)
    t = match_share(r_s, r_t, n_s)
    kept_ref, kept_new = r_s >= r_t, n_s >= t
    return Calibration(
        model_id=new["model_id"][0].as_py(), reference_model_id=reference["model_id"][0].as_py(),
        threshold=round(t, 6), pairs=len(keys), kept_share=round(float(kept_ref.mean()), 6),
        kept_by_reference=int(kept_ref.sum()), kept_by_model=int(kept_new.sum()),
        kept_by_both=int((kept_ref & kept_new).sum()),
    )


def synthetic_sample(out_dir: Path, n: int, seed: int = 0):
    """n pairs of the project's synthetic images: half with their caption, half with a mismatched one."""
    from laion_assets.core.sample import synthetic
    from laion_assets.testing.clip_fixtures import Sample, write_shard

    samples = []
    for i, p in enumerate(synthetic.sample_pairs(n, seed=seed)):
        text = p.text
        if i % 2:
            c, s = synthetic.mismatched(p.color, p.shape, seed=synthetic.pair_seed(seed, i))
            text = synthetic.caption(c, s, seed=synthetic.pair_seed(seed, i))
        samples.append(Sample(f"{i:09d}", p.image, text, "en"))
    downloads, pairs = write_shard(out_dir / "images", samples)
    return out_dir / "images", downloads, pairs


def score_with(model: str, pretrained: str | None, sample, out_dir: Path, device: str, num_workers: int,
               reference: bool) -> pa.Table:
    from laion_assets.core.clip import ClipConfig, ClipScorer
    from laion_assets.core.clip.model import weights_identity
    from laion_assets.weights import register_tiny_model

    register_tiny_model()
    model_id = f"{model}@{weights_identity(pretrained, 0)[0]}"
    # the model being calibrated has no row yet: score it under a placeholder (its thresholds unused)
    extra = {} if reference else {model_id: random_init_thresholds(model_id)}
    cfg = ClipConfig(model_name=model, pretrained=pretrained, device=device, num_workers=num_workers,
                     extra_thresholds=extra)
    images_dir, downloads, pairs = sample
    return ClipScorer(cfg).load().score_shard(images_dir, downloads, pairs, out_dir).table


def table_row(c: Calibration, sample_name: str) -> ModelThresholds:
    return ModelThresholds(
        c.model_id, c.threshold,
        f"calibrated: same kept share ({c.kept_share:.4f}) as {c.reference_model_id} on {c.pairs} pairs of "
        f"{sample_name}; kept by both {c.kept_by_both} of {c.kept_by_reference}",
    )


def main(argv: list[str] | None = None) -> Calibration:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint path ('none': random)")
    ap.add_argument("--reference-model", required=True)
    ap.add_argument("--reference-pretrained", default=None)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--partition", help="<crawl>/<shard> of a downloaded shard under --root")
    src.add_argument("--synthetic", type=int, help="score this many generated pairs instead")
    ap.add_argument("--root", default="data", help="storage root holding --partition")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = ap.parse_args(argv)

    def none(x: str | None) -> str | None:
        return None if x in (None, "", "none") else x

    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            sample, name = synthetic_sample(Path(tmp), args.synthetic), f"{args.synthetic} synthetic pairs"
        else:
            from laion_assets.core.storage.local import LocalStorage
            from laion_assets.core.storage.layout import ShardPaths

            st, paths = LocalStorage(args.root), ShardPaths.from_partition_key(args.partition)
            sample = (st.path(paths.images_dir), st.read_parquet(paths.downloads), st.read_parquet(paths.pairs))
            name = f"shard {args.partition}"
        ref = score_with(args.reference_model, none(args.reference_pretrained), sample, Path(tmp) / "ref",
                         args.device, args.workers, reference=True)
        new = score_with(args.model, none(args.pretrained), sample, Path(tmp) / "new", args.device,
                         args.workers, reference=False)
    result = calibrate(ref, new)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        row = table_row(result, name)
        print(json.dumps(asdict(result), indent=2))
        print("add to laion_assets/core/clip/thresholds.py THRESHOLDS:")
        print(f"    ModelThresholds({row.model_id!r}, {row.strict!r}, {row.source!r}),")
    return result


if __name__ == "__main__":
    main()
