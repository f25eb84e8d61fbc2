"""The clip_scores DuckDB checks pass on a real scored shard and fail on data broken for each one."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.core.clip import ClipConfig, ClipScorer, embedding_table
from laion_assets.core.clip.checks import CHECKS
from laion_assets.testing.clip_fixtures import Sample, write_shard

from laion_assets.core.checks import run_checks

SMALL = "clip-test-checks"
CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    if SMALL not in open_clip.list_models():
        (root / f"{SMALL}.json").write_text(json.dumps(CFG))
        open_clip.add_model_config(root / f"{SMALL}.json")
    samples = [Sample(f"{i:09d}", Image.new("RGB", (64, 48), (i * 20, 100, 200 - i * 5)), f"thing {i}")
               for i in range(10)]
    samples += [Sample("corrupt", b"garbage", "x"), Sample("failed", None, "x")]
    downloads, pairs = write_shard(root / "images", samples)
    scorer = ClipScorer(ClipConfig(model_name=SMALL, pretrained=None, device="cpu", num_workers=0, batch_size=4))
    res = scorer.score_shard(root / "images", downloads, pairs, root / "out")
    return downloads, res.table, embedding_table(root / "out")


def _run(tmp: Path, downloads: pa.Table, scores: pa.Table, emb: pa.Table) -> dict[str, bool]:
    views = {}
    for name, t in (("downloads", downloads), ("scores", scores), ("embeddings", emb)):
        pq.write_table(t, tmp / f"{name}.parquet")
        views[name] = tmp / f"{name}.parquet"
    return {o.name: o.passed for o in run_checks(views, CHECKS)}


def _set(t: pa.Table, col: str, row: int, value) -> pa.Table:
    vals = t[col].to_pylist()
    vals[row] = value
    return t.set_column(t.schema.get_field_index(col), t.schema.field(col), pa.array(vals, t.schema.field(col).type))


def _only_failing(result: dict[str, bool], name: str) -> None:
    assert result[name] is False, result
    assert all(passed for n, passed in result.items() if n != name), result


def test_all_checks_pass_on_a_real_shard(scored, tmp_path):
    downloads, scores, emb = scored
    assert "not_scored" in scores["status"].to_pylist()
    assert all(_run(tmp_path, downloads, scores, emb).values())


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -1.2, None])
def test_similarity_out_of_range_or_nan_fails(scored, tmp_path, bad):
    downloads, scores, emb = scored
    _only_failing(_run(tmp_path, downloads, _set(scores, "similarity", 3, bad), emb), "clip_similarity_in_range")


@pytest.mark.parametrize("breakage", ["duplicate_row", "bad_norm", "extra_embedding", "missing_embedding"])
def test_one_embedding_per_scored_row_fails(scored, tmp_path, breakage):
    downloads, scores, emb = scored
    if breakage == "duplicate_row":
        scores = _set(scores, "embedding_row", 1, 0)
        emb = emb.slice(0, emb.num_rows)  # row 1 now unused as well
    elif breakage == "bad_norm":
        emb = _set(emb, "image_norm", 2, 0.5)
    elif breakage == "extra_embedding":
        extra = pa.table({"embedding_row": pa.array([emb.num_rows], pa.int32()),
                          "image_norm": pa.array([1.0], pa.float32()), "text_norm": pa.array([1.0], pa.float32())})
        emb = pa.concat_tables([emb, extra])
    else:
        emb = emb.slice(0, emb.num_rows - 1)
    _only_failing(_run(tmp_path, downloads, scores, emb), "clip_one_embedding_per_scored_row")


@pytest.mark.parametrize("breakage", ["dropped_row", "no_reason", "duplicate"])
def test_every_ok_download_scored_or_reason_fails(scored, tmp_path, breakage):
    downloads, scores, emb = scored
    keys = scores["key"].to_pylist()
    unscored = scores["status"].to_pylist().index("not_scored")
    if breakage == "dropped_row":
        scores = scores.filter(pa.array([i != unscored for i in range(len(keys))]))
    elif breakage == "no_reason":
        scores = _set(scores, "reason", unscored, None)
    else:
        scores = pa.concat_tables([scores, scores.slice(unscored, 1)])
    _only_failing(_run(tmp_path, downloads, scores, emb), "clip_every_ok_download_scored_or_reason")


def test_mixed_model_ids_fail(scored, tmp_path):
    downloads, scores, emb = scored
    _only_failing(_run(tmp_path, downloads, _set(scores, "model_id", 4, "ViT-B-32@other"), emb),
                  "clip_model_id_constant")
