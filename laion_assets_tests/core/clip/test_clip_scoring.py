"""CLIP scoring machinery on a small random-init open_clip config (fast, no checkpoint needed).

The quality test with the project's trained tiny checkpoint is in test_clip_tiny.py.
"""

from __future__ import annotations

import hashlib
import shutil
import json

import numpy as np
import open_clip
import pyarrow as pa
import pytest
import torch
from PIL import Image, ImageDraw

from laion_assets.core.clip import ClipConfig, ClipScorer, MemoryBudgetExceeded, embedding_table
from laion_assets.testing.clip_fixtures import Sample, write_shard
from laion_assets.core.clip.inputs import ShardBatches
from laion_assets.core.clip.safety import SafetyPrompts
from laion_assets.core.clip.thresholds import ModelThresholds
from laion_assets.core.schemas.scores import SCORE_SCHEMA

SMALL = "clip-test-small"
SMALL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
N_GOOD = 23


@pytest.fixture(scope="module", autouse=True)
def small_model(tmp_path_factory) -> str:
    if SMALL not in open_clip.list_models():
        p = tmp_path_factory.mktemp("cfg") / f"{SMALL}.json"
        p.write_text(json.dumps(SMALL_CFG))
        open_clip.add_model_config(p)
    torch.set_num_threads(2)
    return SMALL


def _image(i: int) -> Image.Image:
    # varying size and aspect, like pre-resized downloads
    w, h = 256, 160 + 7 * i
    im = Image.new("RGB", (w, h), ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256))
    d = ImageDraw.Draw(im)
    d.ellipse([20 + i, 20, 120 + 2 * i, 120], fill=((200 + i) % 256, 40, 90))
    return im


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    langs = ["en", "de", None, "en-US", "fr"]
    samples = [Sample(f"{i:09d}", _image(i), f"a picture number {i}", langs[i % 5]) for i in range(N_GOOD)]
    samples += [
        Sample("corrupt", b"\xff\xd8\xff\xe0 this is not really a jpeg", "broken"),
        Sample("notintar", _image(1), "missing member", in_tar=False),
        Sample("failed", None, "never downloaded"),
        Sample("nocaption", _image(2), "dropped from pairs"),
    ]
    downloads, pairs = write_shard(root / "images", samples, per_tar=10)  # 3 tars
    pairs = pairs.filter(pa.compute.not_equal(pairs["key"], "nocaption"))
    return root / "images", downloads, pairs


# random weights have no calibrated threshold: the tests give the model its own (multilingual) row
SMALL_ID = f"{SMALL}@random"
SMALL_ROW = ModelThresholds(SMALL_ID, 0.3, "test", multilingual=True, by_group={"en": 0.28, "other": 0.25})


def _scorer(**kw) -> ClipScorer:
    kw.setdefault("num_workers", 0)
    kw.setdefault("extra_thresholds", {SMALL_ID: SMALL_ROW})
    return ClipScorer(ClipConfig(model_name=SMALL, pretrained=None, device="cpu", **kw)).load()


def test_one_row_per_ok_download_with_reasons_and_aligned_embeddings(shard, tmp_path):
    images_dir, downloads, pairs = shard
    seen = []
    res = _scorer(batch_size=8).score_shard(images_dir, downloads, pairs, tmp_path,
                                             progress=lambda d, n: seen.append((d, n)))
    t = res.table
    assert t.schema == SCORE_SCHEMA
    ok_keys = [k for k, s in zip(downloads["key"].to_pylist(), downloads["status"].to_pylist()) if s == "ok"]
    assert t["key"].to_pylist() == ok_keys  # one row per ok download, in order; 'failed' absent
    rows = {r["key"]: r for r in t.to_pylist()}
    assert rows["corrupt"]["reason"] == "undecodable_image"
    assert rows["notintar"]["reason"] == "missing_member"
    assert rows["nocaption"]["reason"] == "missing_caption"
    assert res.stats["scored"] == N_GOOD and res.stats["not_scored"] == 3
    assert res.stats["not_scored_undecodable_image"] == 1
    assert seen[-1] == (len(ok_keys), len(ok_keys)) and len(seen) == 4
    st = res.stats
    assert st["main_thread_cpu_s"] >= st["device_work_cpu_s"] > 0 and st["main_thread_overhead_us_per_image"] >= 0
    assert 0 < st["text_tokens_kept_ratio"] < 0.5  # ~8 tokens of a 32-token context

    img = np.load(tmp_path / "img_emb.npy")
    txt = np.load(tmp_path / "text_emb.npy")
    assert img.dtype == np.float16 and img.shape == (N_GOOD, SMALL_CFG["embed_dim"]) == txt.shape
    scored = [r for r in t.to_pylist() if r["status"] == "scored"]
    assert sorted(r["embedding_row"] for r in scored) == list(range(N_GOOD))
    # alignment: the stored row of each key reproduces that key's similarity
    for r in scored:
        i = r["embedding_row"]
        dot = float(img[i].astype(np.float32) @ txt[i].astype(np.float32))
        assert dot == pytest.approx(r["similarity"], abs=3e-3)
    # the similarities differ per key, so a shuffled alignment would fail the loop above
    assert len({round(r["similarity"], 4) for r in scored}) > N_GOOD // 2
    norms = embedding_table(tmp_path)
    assert np.allclose(norms["image_norm"].to_numpy(), 1, atol=2e-3)
    assert np.allclose(norms["text_norm"].to_numpy(), 1, atol=2e-3)


def test_threshold_by_model_language_and_reliability(shard, tmp_path):
    images_dir, downloads, pairs = shard
    # reliable labels for every other row: unreliable ones get the strict value whatever the label
    reliable = [i % 2 == 0 for i in range(pairs.num_rows)]
    pairs = pairs.set_column(pairs.schema.get_field_index("caption_language_reliable"),
                             "caption_language_reliable", pa.array(reliable, pa.bool_()))
    s = _scorer(batch_size=16)
    t = s.score_shard(images_dir, downloads, pairs, tmp_path).table.to_pylist()
    rel = dict(zip(pairs["key"].to_pylist(), reliable))
    expect = {"en": 0.28, "en-US": 0.28, "de": 0.25, "fr": 0.25, None: 0.3}
    checked = 0
    for r in t:
        if r["key"].isdigit():
            want = expect[r["language"]] if rel[r["key"]] else 0.3
            assert r["threshold"] == pytest.approx(want), r
            checked += 1
        assert r["model_id"] == SMALL_ID and r["weights_id"] == "random-init:seed=0"
    assert checked == N_GOOD
    meta = s.metadata()
    assert meta["threshold"] == 0.3 and meta["threshold_source"] == "test" and meta["weights_id"]


def test_unknown_model_fails_at_load_naming_the_calibration_command(tmp_path):
    ckpt = tmp_path / "uncalibrated.pt"
    torch.save(open_clip.create_model(SMALL, pretrained=None).state_dict(), ckpt)
    with pytest.raises(ValueError, match="model_id='clip-test-small@uncalibrated.pt'.*calibrate"):
        ClipScorer(ClipConfig(model_name=SMALL, pretrained=str(ckpt), device="cpu", num_workers=0)).load()
    # random weights (benches) get a placeholder row, flagged as not calibrated
    s = ClipScorer(ClipConfig(model_name=SMALL, pretrained=None, device="cpu", num_workers=0)).load()
    assert s.metadata()["threshold_calibrated"] is False


def test_same_scores_across_batch_sizes_and_workers(shard, tmp_path):
    images_dir, downloads, pairs = shard
    runs = []
    for bs, workers in [(1, 0), (7, 2), (64, 0)]:
        out = tmp_path / f"bs{bs}"
        res = _scorer(batch_size=bs, num_workers=workers).score_shard(images_dir, downloads, pairs, out)
        runs.append((res.table, np.load(out / "img_emb.npy")))
    base_t, base_e = runs[0]
    for t, e in runs[1:]:
        assert t["key"].to_pylist() == base_t["key"].to_pylist()
        assert t["status"].to_pylist() == base_t["status"].to_pylist()
        np.testing.assert_allclose(t["similarity"].to_numpy(zero_copy_only=False),
                                   base_t["similarity"].to_numpy(zero_copy_only=False), atol=1e-5)
        np.testing.assert_allclose(e.astype(np.float32), base_e.astype(np.float32), atol=2e-3)


def test_memory_budget_splits_batches_and_keeps_scores(shard, tmp_path):
    images_dir, downloads, pairs = shard
    ref = _scorer(batch_size=16).score_shard(images_dir, downloads, pairs, tmp_path / "ref")
    assert ref.stats["oom_splits"] == 0
    # one row = a 3x64x64 float32 image + 32 int64 tokens; budget fits 3 rows, not a batch of 16
    row_bytes = 3 * 64 * 64 * 4 + 32 * 8
    res = _scorer(batch_size=16, max_batch_bytes=3 * row_bytes).score_shard(
        images_dir, downloads, pairs, tmp_path / "split")
    assert res.stats["oom_splits"] >= 2
    assert res.stats["effective_batch_size"] <= 3
    assert res.stats["scored"] == ref.stats["scored"]
    np.testing.assert_allclose(res.table["similarity"].to_numpy(zero_copy_only=False),
                               ref.table["similarity"].to_numpy(zero_copy_only=False), atol=1e-5)
    with pytest.raises(MemoryBudgetExceeded):  # not even one row fits: the shard fails loudly
        _scorer(batch_size=4, max_batch_bytes=row_bytes // 2).score_shard(
            images_dir, downloads, pairs, tmp_path / "fail")


def test_local_checkpoint_is_hashed_and_load_is_idempotent(tmp_path):
    torch.manual_seed(1)
    model = open_clip.create_model(SMALL, pretrained=None)
    ckpt = tmp_path / "small.pt"
    torch.save(model.state_dict(), ckpt)
    s = ClipScorer(ClipConfig(model_name=SMALL, pretrained=str(ckpt), device="cpu", num_workers=0,
                              extra_thresholds={f"{SMALL}@small.pt": SMALL_ROW}))
    assert s.load() is s.load()
    first = s.loaded
    s.load()
    assert s.loaded is first
    assert s.weights_id == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert s.model_id == f"{SMALL}@small.pt"
    # the checkpoint's weights were loaded, not a fresh init
    w = dict(model.named_parameters())["visual.conv1.weight"]
    assert torch.equal(dict(s.loaded.model.named_parameters())["visual.conv1.weight"], w)
    assert s.metadata()["device"] == "cpu" and s.batch_size == 32


def test_safety_rule_on_constructed_embeddings():
    e = torch.eye(4)  # prompts 0,1 unsafe; 2,3 safe
    sp = SafetyPrompts(embeddings=e, n_unsafe=2, top_k=2, temperature=100.0)
    r2 = 2 ** -0.5
    imgs = torch.tensor([[r2, r2, 0, 0], [r2, 0, r2, 0], [0, 0, 0.6, 0.8]])
    punsafe, tags = sp.tag(imgs)
    assert tags == ["NSFW", "UNSURE", "UNLIKELY"]
    assert punsafe[0] > 0.99 and 0.4 < punsafe[1] < 0.6 and punsafe[2] < 0.01


def test_safety_columns_on_real_scores(shard, tmp_path):
    images_dir, downloads, pairs = shard
    t = _scorer(batch_size=32).score_shard(images_dir, downloads, pairs, tmp_path).table.to_pylist()
    for r in t:
        if r["status"] == "scored":
            assert r["nsfw"] in ("NSFW", "UNSURE", "UNLIKELY") and 0 <= r["punsafe"] <= 1
        else:
            assert r["nsfw"] is None and r["punsafe"] is None and r["similarity"] is None


@pytest.mark.parametrize("decode_on_worker", [True, False])
def test_a_batch_crosses_processes_as_a_few_tensors_whatever_its_size(shard, decode_on_worker):
    """Each shared tensor costs a descriptor / handover: a batch must not be one tensor per image."""
    images_dir, downloads, pairs = shard
    s = _scorer(batch_size=64)
    items = s._items(images_dir, downloads, pairs)
    ds = ShardBatches([items], s.loaded.preprocess_cfg, s.loaded.tokenizer, decode_on_worker)
    batch = ds[0]
    tensors = [v for v in batch.values() if isinstance(v, torch.Tensor)]
    assert len(tensors) <= 5 and len(batch["pos"]) >= N_GOOD
    assert not any(isinstance(v, list) and v and isinstance(v[0], torch.Tensor) for v in batch.values())


def test_device_decode_path_matches_worker_decode(shard, tmp_path):
    """decode='device' is the CUDA path (raw bytes -> batched decode_jpeg -> resize on the device);
    on CPU it runs the same code, and must give the worker path's scores and reasons."""
    images_dir, downloads, pairs = shard
    w = _scorer(batch_size=8, decode="workers").score_shard(images_dir, downloads, pairs, tmp_path / "w")
    d = _scorer(batch_size=8, decode="device", num_workers=1).score_shard(images_dir, downloads, pairs, tmp_path / "d")
    assert d.stats["decode"] == "device:cpu" and w.stats["decode"] == "workers"
    assert d.table["reason"].to_pylist() == w.table["reason"].to_pylist()
    np.testing.assert_allclose(d.table["similarity"].to_numpy(zero_copy_only=False),
                               w.table["similarity"].to_numpy(zero_copy_only=False), atol=1e-5)


@pytest.mark.parametrize("field,value,message", [
    ("worker_timeout_s", 0, "worker_timeout_s=0: must be in (0.0, 86400.0]"),
    ("batch_size", 0, "batch_size=0: must be in [1, 1048576]"),
    ("decode", "gpu", "decode='gpu': must be one of 'auto', 'workers', 'device'"),
    ("num_workers", -1, "num_workers=-1: must be in [0, 256]"),
])
def test_bad_settings_fail_naming_the_setting(field, value, message):
    with pytest.raises(ValueError) as e:
        ClipConfig(**{field: value})
    assert str(e.value) == message


def test_unreadable_tar_gives_its_rows_a_reason_and_the_rest_are_scored(shard, tmp_path):
    images_dir, downloads, pairs = shard
    broken = tmp_path / "images"
    shutil.copytree(images_dir, broken)
    (broken / "00001.tar").write_bytes(b"this is not a tar archive" * 100)
    for workers in (0, 1):
        t = _scorer(batch_size=8, num_workers=workers).score_shard(broken, downloads, pairs, tmp_path / f"o{workers}")
        rows = {r["key"]: r for r in t.table.to_pylist()}
        in_broken = {k for k, tar in zip(downloads["key"].to_pylist(), downloads["tar_path"].to_pylist())
                     if tar == "00001.tar"}
        assert in_broken and all(rows[k]["reason"] in ("missing_tar", "missing_caption") for k in in_broken)
        assert t.stats["scored"] == N_GOOD - len([k for k in in_broken if k.isdigit()])
