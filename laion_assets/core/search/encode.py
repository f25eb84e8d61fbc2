"""Query embeddings with the release's own CLIP model, computed exactly as the scorer computed the
stored ones (decode -> resize/crop -> normalize -> encode -> unit norm), plus the uploaded image's
PDQ hash as the downloader computes it, so a query is comparable with every indexed row."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from laion_assets.core.clip.config import ClipConfig
from laion_assets.core.clip.inputs import decode_cpu, normalize, resize_crop
from laion_assets.core.clip.model import LoadedModel, load_model
from laion_assets.core.clip.text import encode_text
from laion_assets.core.download.resizer import pdq_hash

MAX_QUERY_IMAGE_BYTES = 20 * 1024 * 1024
MAX_QUERY_IMAGE_PIXELS = 64_000_000


class BadQueryImage(ValueError):
    """The upload is not an image we can read (the reason is the message)."""


@dataclass(frozen=True)
class ImageQuery:
    embedding: np.ndarray  # float32, unit norm
    pdq: str
    pdq_quality: int


class QueryEncoder:
    """One open_clip model on the CPU (or `device`), loaded once; thread-safe through a lock-free
    torch.inference_mode (the HTTP server calls it from several threads)."""

    def __init__(self, model_name: str, pretrained: str | None, device: str = "cpu"):
        if model_name.startswith("laion-tiny"):
            from laion_assets.weights import register_tiny_model

            register_tiny_model()
        self.lm: LoadedModel = load_model(ClipConfig(model_name=model_name, pretrained=pretrained,
                                                     device=device, precision="fp32"))

    @property
    def model_id(self) -> str:
        return self.lm.model_id

    def text(self, query: str) -> np.ndarray:
        tokens = self.lm.tokenizer([query]).to(self.lm.device)
        with torch.inference_mode():
            x = encode_text(self.lm.model, tokens)
        return F.normalize(x.float(), dim=-1)[0].cpu().numpy()

    def image(self, data: bytes) -> ImageQuery:
        if not data:
            raise BadQueryImage("empty upload")
        if len(data) > MAX_QUERY_IMAGE_BYTES:
            raise BadQueryImage(f"upload of {len(data)} bytes is over {MAX_QUERY_IMAGE_BYTES}")
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_QUERY_IMAGE_PIXELS:
                    raise BadQueryImage(f"{im.width}x{im.height} is over {MAX_QUERY_IMAGE_PIXELS} pixels")
                im.load()
                pdq, quality = pdq_hash(im.convert("RGB"))
            pixels = decode_cpu(data)
        except BadQueryImage:
            raise
        except Exception as e:  # PIL raises many types for bad files; the reason is what matters
            raise BadQueryImage(f"not a readable image: {type(e).__name__}: {e}") from e
        crop = resize_crop(pixels, self.lm.preprocess_cfg).unsqueeze(0).to(self.lm.device)
        with torch.inference_mode():
            x = self.lm.model.encode_image(normalize(crop, self.lm.preprocess_cfg))
        return ImageQuery(F.normalize(x.float(), dim=-1)[0].cpu().numpy(), pdq, quality)
