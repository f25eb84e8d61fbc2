"""The CLIP model is loaded once per process, whatever number of resource instances Dagster builds."""

from __future__ import annotations

from laion_assets import weights as models
from laion_assets.defs.clip.resources import ClipModelResource


def test_resource_instances_share_one_loaded_scorer():
    kw = dict(model_name=models.TINY_MODEL_NAME, pretrained=str(models.TINY_CHECKPOINT), device="cpu",
              options={"num_workers": 0})
    a, b = ClipModelResource(**kw), ClipModelResource(**kw)  # e.g. two runs in one process
    s = a.scorer()
    assert b.scorer() is s and s.loaded is not None
    assert s.metadata()["threshold_calibrated"] is True and s.metadata()["threshold"] == 0.28
    other = ClipModelResource(**{**kw, "batch_size": 7})
    assert other.scorer() is not s and other.scorer().batch_size == 7
