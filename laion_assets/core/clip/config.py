"""Configuration of CLIP scoring: model, device, batching, input pipeline, thresholds, safety prompts.

Everything that changes a number in the output lives here, so the Dagster shell can record it in
materialization metadata. Defaults are the production ones (ViT-B-32, LAION-2B weights, LAION's
0.28 / 0.26 similarity thresholds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# LAION-5B kept a pair when cosine(image, text) >= 0.28 for English captions (ViT-B/32) and
# >= 0.26 for the multilingual / unknown-language subset.
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType({"en": 0.28})
DEFAULT_THRESHOLD = 0.26

# Crawl-time safety heuristic in the spirit of LAION's: the image embedding is compared with prompts
# for a few unsafe categories and many ordinary ones. Generic category words only; this is a coarse
# heuristic, not a classifier (see docs/clip.md).
NSFW_UNSAFE_PROMPTS: tuple[str, ...] = (
    "a photo containing nudity",
    "sexually explicit content",
    "pornographic material",
    "an erotic photo",
    "graphic violence",
    "a gory image",
)
NSFW_SAFE_PROMPTS: tuple[str, ...] = (
    "a photo of a person",
    "a portrait of a fully clothed person",
    "a photo of an animal",
    "a landscape photo",
    "a photo of food",
    "a photo of a building",
    "a photo of a product",
    "a photo of a vehicle",
    "a drawing",
    "a diagram or a chart",
    "a screenshot of text",
    "a logo",
    "a plain colored shape",
    "a photo of people at an event",
)

NSFW_TAGS = ("NSFW", "UNSURE", "UNLIKELY")

# Statuses of a score row. `scored` rows have similarity and an embedding_row; the others a reason.
SCORED = "scored"
NOT_SCORED = "not_scored"
REASONS = ("missing_tar", "missing_member", "undecodable_image", "missing_caption", "empty_caption")


@dataclass(frozen=True)
class ClipConfig:
    """What model to run where, and how to feed it.

    model_name / pretrained: any open_clip architecture and either a pretrained tag (downloaded by
      open_clip on first use), a local checkpoint path (hashed into weights_id), or None (random
      weights seeded by `seed`: benches only).
    device: "auto" (cuda > mps > cpu), or an explicit torch device string.
    precision: "auto" = bf16 autocast on CUDA when supported else fp16; fp32 on CPU/MPS.
    batch_size: None = a safe default per device (see model.default_batch_size).
    max_batch_bytes: a budget for the device-side input tensors of one forward; a batch above it
      raises MemoryBudgetExceeded and is split exactly like a CUDA OOM (how CPU tests exercise it).
    num_workers: DataLoader worker processes for tar reading + decode + preprocess (None = all CPU
      cores but one, at most 16; 0 = in the main process).
    decode: "auto" = on the device (nvJPEG) when it is CUDA, else in the workers (libjpeg-turbo);
      "workers" forces worker decode; "device" decodes batches in the main process on the model's
      device (nvJPEG on CUDA; on CPU it runs the same code path, which is how tests exercise it).
    """

    model_name: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    max_batch_bytes: int | None = None
    num_workers: int | None = None
    prefetch_factor: int = 4
    decode: str = "auto"
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    default_threshold: float = DEFAULT_THRESHOLD
    nsfw_unsafe_prompts: tuple[str, ...] = NSFW_UNSAFE_PROMPTS
    nsfw_safe_prompts: tuple[str, ...] = NSFW_SAFE_PROMPTS
    # LAION's rule: look at the k prompts most similar to the image; all unsafe -> NSFW,
    # some unsafe -> UNSURE, none -> UNLIKELY.
    nsfw_top_k: int = 2
    # punsafe = softmax(logit_scale * cos) mass on the unsafe prompts; None = the model's logit_scale.
    punsafe_temperature: float | None = None
    seed: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.decode not in ("auto", "workers", "device"):
            raise ValueError(f"decode must be auto, workers or device, not {self.decode!r}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, not {self.precision!r}")
        if self.nsfw_top_k < 1:
            raise ValueError("nsfw_top_k must be >= 1")
        if not self.nsfw_unsafe_prompts or not self.nsfw_safe_prompts:
            raise ValueError("both NSFW prompt lists must be non-empty")

    def threshold_for(self, language: str | None) -> float:
        """Threshold for a caption language: exact code, then its base ('en-US' -> 'en'), then default."""
        if language:
            lang = language.strip().lower().replace("_", "-")
            if lang in self.thresholds:
                return float(self.thresholds[lang])
            base = lang.split("-", 1)[0]
            if base in self.thresholds:
                return float(self.thresholds[base])
        return float(self.default_threshold)
