"""Configuration of CLIP scoring: model, device, batching, input pipeline, safety prompts.

Everything that changes a number in the output lives here, so the Dagster shell can record it in
materialization metadata. Defaults are the production ones (ViT-B-32, LAION-2B weights). Similarity
thresholds belong to the model and live in `thresholds.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from laion_assets.core.clip.thresholds import ModelThresholds
from laion_assets.core.lib.validation import require_choice, require_int_range, require_range

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
    extra_thresholds / trim_text_padding / worker_timeout_s: see the comments at the fields.
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
    # rows for models not (yet) in thresholds.THRESHOLDS: a freshly calibrated model, test configs
    extra_thresholds: Mapping[str, ModelThresholds] = field(default_factory=dict)
    # text tower input: pad captions to the batch's longest instead of the context length (exact for
    # causal-masked towers that pool at the EOT token; see text.trim_tokens)
    trim_text_padding: bool = True
    # a DataLoader batch not delivered within this many seconds fails the shard (worker hang/death)
    worker_timeout_s: float = 120.0
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
        if self.batch_size is not None:
            require_int_range("batch_size", self.batch_size, 1, 1 << 20)
        if self.num_workers is not None:
            require_int_range("num_workers", self.num_workers, 0, 256)
        require_int_range("prefetch_factor", self.prefetch_factor, 1, 64)
        if self.max_batch_bytes is not None:
            require_int_range("max_batch_bytes", self.max_batch_bytes, 1)
        require_choice("decode", self.decode, ("auto", "workers", "device"))
        require_choice("precision", self.precision, ("auto", "fp32", "fp16", "bf16"))
        require_int_range("nsfw_top_k", self.nsfw_top_k, 1, len(self.nsfw_unsafe_prompts) + len(self.nsfw_safe_prompts))
        require_range("worker_timeout_s", self.worker_timeout_s, 0.0, 86400.0, lo_open=True)
        if self.punsafe_temperature is not None:
            require_range("punsafe_temperature", self.punsafe_temperature, 0.0, None, lo_open=True)
        if not self.nsfw_unsafe_prompts or not self.nsfw_safe_prompts:
            raise ValueError("both NSFW prompt lists must be non-empty")

    def threshold_table(self) -> Mapping[str, ModelThresholds]:
        from laion_assets.core.clip.thresholds import THRESHOLDS

        return {**THRESHOLDS, **self.extra_thresholds}
