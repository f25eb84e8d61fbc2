"""The checked-in tiny CLIP ("laion-tiny") used by tests and the offline demo.

It goes through exactly the same ``open_clip.create_model_and_transforms`` path as
the production default (ViT-B-32 with LAION-2B weights); only the name and the
checkpoint path differ. See docs/tiny-model.md.
"""

from __future__ import annotations

import pathlib

from laion_assets.core.lib.ids import file_sha256

_HERE = pathlib.Path(__file__).resolve().parent

TINY_MODEL_NAME = "laion-tiny"
TINY_CONFIG: pathlib.Path = _HERE / f"{TINY_MODEL_NAME}.json"
TINY_CHECKPOINT: pathlib.Path = _HERE / f"{TINY_MODEL_NAME}.pt"


def checkpoint_sha256(path: str | pathlib.Path = TINY_CHECKPOINT) -> str:
    """Hex SHA-256 of a checkpoint file (computed, not hard-coded, so retraining can't go stale)."""
    return file_sha256(path)


def register_tiny_model() -> str:
    """Make ``TINY_MODEL_NAME`` known to open_clip (idempotent); returns the name.

    After this, ``open_clip.create_model_and_transforms(TINY_MODEL_NAME,
    pretrained=str(TINY_CHECKPOINT))`` and ``open_clip.get_tokenizer(TINY_MODEL_NAME)`` work.
    Only the JSON file is registered (not the folder), so nothing else here is scanned.
    """
    import open_clip

    if TINY_MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(TINY_CONFIG)
    return TINY_MODEL_NAME
