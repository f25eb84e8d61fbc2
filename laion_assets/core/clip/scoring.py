"""ClipScorer: one loaded model per process, scoring whole download shards.

score_shard reads the `ok` rows of the download table, streams their tar members through the worker
pipeline, encodes images and captions in the same (OOM-splitting) forward, and returns one SCORE_SCHEMA
row per `ok` download plus float16 unit-norm embeddings written to out_dir.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from laion_assets.core.schemas.scores import IMG_EMB_FILE, TEXT_EMB_FILE
from laion_assets.core.clip.config import NOT_SCORED, SCORED, ClipConfig
from laion_assets.core.clip.inputs import (
    InputPipelineError,
    Item,
    Normalizer,
    ShardBatches,
    decode_batch_on_device,
    make_loader,
)
from laion_assets.core.clip.model import LoadedModel, SplittingRunner, default_batch_size, load_model
from laion_assets.core.clip.safety import SafetyPrompts
from laion_assets.core.clip.text import encode_text, trim_tokens
from laion_assets.core.clip.thresholds import (
    ModelThresholds,
    random_init_thresholds,
    threshold_for,
    thresholds_of,
)
from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.download.keys import image_member
from laion_assets.core.schemas.scores import SCORE_SCHEMA



@dataclass
class ScoreResult:
    table: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)
    img_emb_path: Path | None = None
    text_emb_path: Path | None = None


def default_num_workers() -> int:
    return max(1, min(16, available_cpus() - 1))


class ClipScorer:
    """Load once (`load()`), then `score_shard` as many shards as the process gets."""

    def __init__(self, config: ClipConfig | None = None):
        self.config = config or ClipConfig()
        self.loaded: LoadedModel | None = None
        self.safety: SafetyPrompts | None = None
        self.embed_dim: int | None = None
        self.batch_size: int | None = None
        self.num_workers: int | None = None
        self.decode_on_device = False
        self.thresholds: ModelThresholds | None = None
        self._normalizer: Normalizer | None = None

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> ClipScorer:
        if self.loaded is not None:
            return self
        cfg = self.config
        lm = load_model(cfg)
        # an unknown model fails here, at the start of the step, not after the shard was scored
        table = cfg.threshold_table()
        if lm.weights_id.startswith("random-init") and lm.model_id not in table:
            self.thresholds = random_init_thresholds(lm.model_id)  # benches: scores mean nothing anyway
        else:
            self.thresholds = thresholds_of(lm.model_id, table)
        self.batch_size = cfg.batch_size or default_batch_size(lm.device)
        self.num_workers = default_num_workers() if cfg.num_workers is None else cfg.num_workers
        self.decode_on_device = cfg.decode == "device" or (cfg.decode == "auto" and lm.device.type == "cuda")
        prompts = list(cfg.nsfw_unsafe_prompts) + list(cfg.nsfw_safe_prompts)
        with torch.inference_mode(), lm.autocast():
            emb = lm.model.encode_text(lm.tokenizer(prompts).to(lm.device))
        emb = F.normalize(emb.float(), dim=-1)
        self.embed_dim = int(emb.shape[1])
        self.safety = SafetyPrompts(
            embeddings=emb,
            n_unsafe=len(cfg.nsfw_unsafe_prompts),
            top_k=cfg.nsfw_top_k,
            temperature=cfg.punsafe_temperature or lm.logit_scale,
        )
        self._normalizer = Normalizer(lm.preprocess_cfg, lm.device, next(lm.model.parameters()).dtype)
        self.loaded = lm
        return self

    @property
    def model_id(self) -> str:
        return self._lm.model_id

    @property
    def weights_id(self) -> str:
        return self._lm.weights_id

    @property
    def _lm(self) -> LoadedModel:
        if self.loaded is None:
            raise RuntimeError("call ClipScorer.load() first")
        return self.loaded

    def metadata(self) -> dict[str, Any]:
        """What the materialization should record about the model, whatever the shard."""
        lm = self._lm
        return {
            "model_id": lm.model_id,
            "model_name": self.config.model_name,
            "weights_id": lm.weights_id,
            "device": str(lm.device),
            "dtype": lm.dtype_name,
            "batch_size": self.batch_size,
            "threshold": self.thresholds.strict,
            "thresholds_by_language_group": ",".join(f"{k}={v}" for k, v in sorted(self.thresholds.by_group.items()))
            or "none (one threshold for every language)",
            "threshold_source": self.thresholds.source,
            "threshold_calibrated": self.thresholds.calibrated,
            "trim_text_padding": self.config.trim_text_padding,
            "nsfw_top_k": self.config.nsfw_top_k,
        }

    # -- forward ---------------------------------------------------------------------------------
    def _forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self._lm
        with torch.inference_mode(), lm.autocast():
            img = lm.model.encode_image(images)
            txt = encode_text(lm.model, tokens) if self.config.trim_text_padding else lm.model.encode_text(tokens)
        return F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)

    def _to_host(self, tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], Any]:
        """Queue device->host copies into pinned buffers and return (buffers, event) without waiting,
        so the next batch is launched before this one is read back (CUDA); plain copies elsewhere."""
        if self._lm.device.type != "cuda":
            return [t.cpu() for t in tensors], None
        host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
        for h, t in zip(host, tensors):
            h.copy_(t, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    # -- shard -----------------------------------------------------------------------------------
    def _items(self, images_dir: Path, downloads: pa.Table, pairs: pa.Table) -> list[Item]:
        ok = downloads.filter(pc.equal(downloads["status"], "ok"))
        keys = ok["key"].to_pylist()
        tars = ok["tar_path"].to_pylist() if "tar_path" in ok.column_names else [None] * len(keys)
        members = ok["tar_member"].to_pylist() if "tar_member" in ok.column_names else [None] * len(keys)
        texts = dict(zip(pairs["key"].to_pylist(), pairs["text"].to_pylist()))
        tar_exists: dict[str, bool] = {}
        items: list[Item] = []
        for pos, (key, tar, member) in enumerate(zip(keys, tars, members)):
            text = texts.get(key)
            reason = None
            tar_abs = None
            if text is None:
                reason = "missing_caption"
            elif not text.strip():
                reason = "empty_caption"
            elif tar is None:
                reason = "missing_tar"
            else:
                tar_abs = str(Path(images_dir) / tar)
                if tar_abs not in tar_exists:
                    tar_exists[tar_abs] = os.path.isfile(tar_abs)
                if not tar_exists[tar_abs]:
                    reason = "missing_tar"
            # members are located (tar index) where they are read, in the workers
            items.append(Item(pos, key, tar_abs, image_member(key, member), text, reason))
        return items

    def score_shard(
        self,
        images_dir: Path,
        downloads: pa.Table,
        pairs: pa.Table,
        out_dir: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> ScoreResult:
        self.load()
        lm, cfg = self._lm, self.config
        assert self.batch_size is not None and self.num_workers is not None and self.safety is not None
        t0 = time.perf_counter()
        items = self._items(Path(images_dir), downloads, pairs)
        n = len(items)
        batches = [items[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        dataset = ShardBatches(batches, lm.preprocess_cfg, lm.tokenizer, decode_on_worker=not self.decode_on_device)
        workers = min(self.num_workers, len(batches))
        loader = make_loader(dataset, workers, cfg.prefetch_factor, pin_memory=lm.device.type == "cuda",
                             timeout_s=cfg.worker_timeout_s)
        runner = SplittingRunner(self._forward, cfg.max_batch_bytes, lm.device)
        normalizer = self._normalizer
        batches_iter = iter(loader)  # forks the workers: per-shard setup, not per-image cost
        t_loop = time.perf_counter()

        similarity = np.full(n, np.nan, dtype=np.float32)
        punsafe = np.full(n, np.nan, dtype=np.float32)
        nsfw: list[str | None] = [None] * n
        reasons: list[str | None] = [None] * n
        emb_row = np.full(n, -1, dtype=np.int64)
        img_parts: list[np.ndarray] = []
        txt_parts: list[np.ndarray] = []
        n_scored = done = 0
        text_tokens = text_tokens_full = 0

        def finish(pending: tuple[np.ndarray, list[torch.Tensor], Any]) -> None:
            nonlocal n_scored
            idx, (sim, ps, n_bad, img16, txt16), event = pending
            if event is not None:
                event.synchronize()  # waits for this batch only; the next one is already queued
            similarity[idx] = sim.numpy()
            punsafe[idx] = ps.numpy()
            for p, t in zip(idx.tolist(), self.safety.tags_from_counts(n_bad.tolist())):
                nsfw[p] = t
            emb_row[idx] = np.arange(n_scored, n_scored + len(idx))
            n_scored += len(idx)
            img_parts.append(img16.numpy())
            txt_parts.append(txt16.numpy())

        pending = None
        wait_s = device_cpu_s = decode_cpu_s = 0.0
        # CPU time of the main thread itself. On a GPU it only launches work, so its cost per image
        # is the ceiling of the whole stage; on CPU the device work (normalize, forward, similarity,
        # safety) and device-path decode run in this thread too and are timed apart, so the rest, the
        # orchestration a GPU run pays as well, stays visible.
        cpu0 = time.thread_time()
        t_wait = time.perf_counter()
        try:
            while True:
                try:
                    batch = next(batches_iter)
                except StopIteration:
                    break
                except Exception as e:  # worker died, hung past the timeout, or raised
                    raise InputPipelineError(
                        f"CLIP input pipeline failed after {done} of {n} rows ({workers} workers, "
                        f"worker_timeout_s={cfg.worker_timeout_s}): {type(e).__name__}: {e}"
                    ) from e
                wait_s += time.perf_counter() - t_wait
                for p, r in batch["failed"]:
                    reasons[p] = r
                pos, tokens = batch["pos"], batch["tokens"]
                if self.decode_on_device:
                    d0 = time.thread_time()
                    images, bad = decode_batch_on_device(batch["raw"], batch["raw_sizes"], batch["raw_is_jpeg"],
                                                         lm.preprocess_cfg, lm.device)
                    if bad:
                        keep = torch.ones(len(pos), dtype=torch.bool)
                        keep[bad] = False
                        for b in bad:
                            reasons[int(pos[b])] = "undecodable_image"
                        pos, tokens = pos[keep], tokens[keep]
                    decode_cpu_s += time.thread_time() - d0
                else:
                    images = batch["images"].to(lm.device, non_blocking=True)
                done += len(pos) + len(batch["failed"])
                if len(pos):
                    text_tokens_full += tokens.numel()
                    if cfg.trim_text_padding:
                        tokens = trim_tokens(lm.model, tokens)
                    text_tokens += tokens.numel()
                    f0 = time.thread_time()
                    x = normalizer(images)
                    img, txt = runner(x, tokens.to(lm.device, non_blocking=True))
                    sim = (img * txt).sum(dim=-1).clamp_(-1.0, 1.0)
                    ps, n_bad = self.safety.scores(img)
                    outs = [sim, ps, n_bad, img.to(torch.float16), txt.to(torch.float16)]
                    device_cpu_s += time.thread_time() - f0
                    launched = (pos.numpy(), *self._to_host(outs))
                    if pending is not None:
                        finish(pending)
                    pending = launched
                if progress is not None:
                    progress(done, n)
                t_wait = time.perf_counter()
            if pending is not None:
                finish(pending)
        except RuntimeError as e:
            # torch's SIGCHLD handler raises wherever the main thread is when a worker dies
            if isinstance(e, InputPipelineError) or "DataLoader worker" not in str(e):
                raise
            raise InputPipelineError(
                f"CLIP input pipeline failed after {done} of {n} rows ({workers} workers): {e}"
            ) from e
        finally:
            shutdown = getattr(batches_iter, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()  # a failed shard must not leave worker processes behind
            # a stopped worker ignores the SIGTERM of shutdown and would block interpreter exit
            # (multiprocessing joins its children): SIGKILL what is left, now that torch no longer
            # watches those pids
            for w in getattr(batches_iter, "_workers", []):
                if w.is_alive():
                    w.kill()
                    w.join(timeout=5)
        main_cpu_s = time.thread_time() - cpu0
        elapsed = time.perf_counter() - t0

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        d = self.embed_dim or 0
        img_all = np.concatenate(img_parts) if img_parts else np.zeros((0, d), np.float16)
        txt_all = np.concatenate(txt_parts) if txt_parts else np.zeros((0, d), np.float16)
        np.save(out_dir / IMG_EMB_FILE, img_all)
        np.save(out_dir / TEXT_EMB_FILE, txt_all)

        pair_keys = pairs["key"].to_pylist()
        langs = dict(zip(pair_keys, pairs["caption_language"].to_pylist())) \
            if "caption_language" in pairs.column_names else {}
        reliable = dict(zip(pair_keys, pairs["caption_language_reliable"].to_pylist())) \
            if "caption_language_reliable" in pairs.column_names else {}
        scored = emb_row >= 0
        keys = [it.key for it in items]
        lang_col = [langs.get(k) for k in keys]
        table_rows = {lm.model_id: self.thresholds}
        thresholds = [threshold_for(lm.model_id, lang, reliable.get(k), table_rows) for k, lang in zip(keys, lang_col)]
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "status": pa.array([SCORED if s else NOT_SCORED for s in scored], pa.string()),
                "reason": pa.array([None if s else (r or "not_scored") for s, r in zip(scored, reasons)], pa.string()),
                "similarity": pa.array(similarity, pa.float32(), mask=~scored),
                "threshold": pa.array(thresholds, pa.float32()),
                "language": pa.array(lang_col, pa.string()),
                "model_id": pa.array([lm.model_id] * n, pa.string()),
                "weights_id": pa.array([lm.weights_id] * n, pa.string()),
                "punsafe": pa.array(punsafe, pa.float32(), mask=~scored),
                "nsfw": pa.array(nsfw, pa.string()),
                "embedding_row": pa.array(emb_row.astype(np.int32), pa.int32(), mask=~scored),
            },
            schema=SCORE_SCHEMA,
        )
        reason_counts = Counter(r for s, r in zip(scored, reasons) if not s)
        thr = table["threshold"].to_numpy()
        stats: dict[str, Any] = {
            "rows": n,
            "scored": int(n_scored),
            "not_scored": int(n - n_scored),
            **{f"not_scored_{k}": int(v) for k, v in sorted(reason_counts.items())},
            "above_threshold": int(np.sum(similarity[scored] >= thr[scored])),
            "nsfw_NSFW": sum(t == "NSFW" for t in nsfw),
            "nsfw_UNSURE": sum(t == "UNSURE" for t in nsfw),
            "elapsed_s": round(elapsed, 3),
            "images_per_s": round(n_scored / elapsed, 2) if elapsed > 0 else 0.0,
            "texts_per_s": round(n_scored / elapsed, 2) if elapsed > 0 else 0.0,
            # time the main loop sat waiting for the input pipeline: ~elapsed means input-bound
            "input_wait_s": round(wait_s, 3),
            "setup_s": round(t_loop - t0, 3),
            "main_thread_cpu_s": round(main_cpu_s, 4),
            "device_work_cpu_s": round(device_cpu_s, 4),
            "device_decode_cpu_s": round(decode_cpu_s, 4),
            # main-thread CPU per image outside device work and device decode (see above)
            "main_thread_overhead_us_per_image":
                round(1e6 * (main_cpu_s - device_cpu_s - decode_cpu_s) / max(1, n_scored), 2),
            "text_tokens_kept_ratio": round(text_tokens / text_tokens_full, 4) if text_tokens_full else 1.0,
            "oom_splits": runner.oom_splits,
            "effective_batch_size": runner.chunk or self.batch_size,
            "num_workers": workers,
            "decode": f"device:{lm.device.type}" if self.decode_on_device else "workers",
            **self.metadata(),
        }
        return ScoreResult(table, stats, out_dir / IMG_EMB_FILE, out_dir / TEXT_EMB_FILE)


def embedding_table(out_dir: Path) -> pa.Table:
    """(embedding_row, image_norm, text_norm) for the DuckDB check: one unit-norm row per scored row."""
    img = np.load(Path(out_dir) / IMG_EMB_FILE, mmap_mode="r")
    txt = np.load(Path(out_dir) / TEXT_EMB_FILE, mmap_mode="r")
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"{out_dir}: {img.shape[0]} image vs {txt.shape[0]} text embeddings")
    return pa.table(
        {
            "embedding_row": pa.array(np.arange(img.shape[0], dtype=np.int32)),
            "image_norm": pa.array(np.linalg.norm(np.asarray(img, np.float32), axis=1).astype(np.float32)),
            "text_norm": pa.array(np.linalg.norm(np.asarray(txt, np.float32), axis=1).astype(np.float32)),
        }
    )
