"""Caption language (py3langid, model shipped in the wheel) and page language (as declared by the page)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_LANG_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


@lru_cache(maxsize=1)
def _identifier():
    from .langmodel import load_identifier

    # norm_probs: a probability in [0, 1], calibrated across text lengths, usable as a reliability score.
    return load_identifier(norm_probs=True)


@lru_cache(maxsize=1 << 16)
def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) for one caption; cached, since captions repeat across pages."""
    lang, prob = _identifier().classify(text)
    return lang, float(prob)


@lru_cache(maxsize=1)
def _tables() -> tuple:
    """py3langid's model as numpy arrays: the byte DFA (next-state table, state -> row offset, state ->
    feature or -1), the naive-Bayes feature table in float32 (100k x 142, 57 MB; gathering float32 rows is
    ~2x faster than converting float16 rows per call), class priors, labels and alias pairs; plus
    memoryviews of the DFA for the per-byte tail walk. From the per-machine cache (langmodel.load_tables,
    no identifier built, the float32 table mapped), else derived from py3langid's identifier."""
    from .langmodel import load_tables

    t = load_tables()
    if t is not None:
        nextmove, rowbase, output = t["nextmove"], t["rowbase"], t["output"]
        ptc, pc, classes, alias = t["ptc32"], t["pc"], t["classes"], t["alias_pairs"]
    else:
        ident = _identifier()
        nextmove = np.frombuffer(ident.tk_nextmove, dtype=np.dtype(f"u{ident.tk_nextmove.itemsize}"))
        rowbase = np.asarray(ident._rowbase, dtype=np.int64)  # tk_row[state] << 8
        output = np.asarray(ident.tk_output, dtype=np.int64)
        ptc, pc, classes, alias = ident.nb_ptc.astype(np.float32), ident.nb_pc, ident.nb_classes, ident._alias_pairs
    views = (memoryview(np.ascontiguousarray(nextmove)), memoryview(np.ascontiguousarray(rowbase)),
             memoryview(np.ascontiguousarray(output)))
    return nextmove, rowbase, output, ptc, pc, list(classes), list(alias), views


_TAIL = 8  # when this few captions are still being walked, finish them one by one in Python
_BLOCK = 256  # texts scaled and soft-maxed at once (146 KB of scores: they stay in cache)
_SEG_BLOCK = 4096  # texts whose feature rows are summed together (grouped by how many features they have)
_SEG_ROWS = 1024  # feature rows gathered at once in _segment_sums (~0.6 MB)


def _pairwise(x: np.ndarray) -> np.ndarray:
    """Sum over axis 1 of x (segments, k, classes) in float32 with numpy's pairwise order: what its add
    reduction inner loop does along a strided axis (k < 8: sequential from 0.0; k <= 128: eight partial
    sums combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest; else split in two at a multiple
    of 8). Tested bit for bit against np.add.reduceat."""
    k = x.shape[1]
    if k < 8:
        res = np.zeros((x.shape[0], x.shape[2]), dtype=np.float32)
        for i in range(k):
            res += x[:, i]
        return res
    if k <= 128:
        r = x[:, :8].copy()
        end = k - k % 8
        for i in range(8, end, 8):
            r += x[:, i : i + 8]
        res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
        for i in range(end, k):
            res += x[:, i]
        return res
    k2 = k // 2
    k2 -= k2 % 8
    return _pairwise(x[:, :k2]) + _pairwise(x[:, k2:])


try:  # the same sums in C (setup.py; optional): bit for bit, ~4x less CPU than the numpy gathers below
    from ._langsum import segment_sums as _BUILT_SEGMENT_SUMS
except ImportError:  # pragma: no cover - test_native fails when it is not built
    _BUILT_SEGMENT_SUMS = None
_native_sums = _BUILT_SEGMENT_SUMS


def use_native_sums(enabled: bool) -> bool:
    """Take the C sums (True, when built) or numpy's (False) from now on; returns the previous choice."""
    global _native_sums
    before = _native_sums is not None
    _native_sums = _BUILT_SEGMENT_SUMS if enabled else None
    return before


def native_sums_built() -> bool:
    return _BUILT_SEGMENT_SUMS is not None


def _segment_sums(ptc: np.ndarray, feat: np.ndarray, weight: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """`np.add.reduceat(ptc[feat] * weight[:, None], starts, axis=0)`, bit for bit: in C when built, else
    `_segment_sums_numpy`."""
    if _native_sums is None or not len(starts):
        return _segment_sums_numpy(ptc, feat, weight, starts)
    out = np.empty((len(starts), ptc.shape[1]), dtype=np.float32)
    _native_sums(ptc, np.ascontiguousarray(feat, dtype=np.int64), np.ascontiguousarray(weight, dtype=np.float32),
                 np.ascontiguousarray(starts, dtype=np.int64), out)
    return out


def _segment_sums_numpy(ptc: np.ndarray, feat: np.ndarray, weight: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """`np.add.reduceat(ptc[feat] * weight[:, None], starts, axis=0)`, the same float32 operations in the
    same order (reduceat adds each segment's first row to the pairwise sum of the others), computed for
    all segments of one length together: row-wise numpy over contiguous rows instead of reduceat's
    column-by-column strided loop (~10-15 % less CPU for the language step)."""
    lens = np.diff(starts, append=len(feat))
    out = np.empty((len(starts), ptc.shape[1]), dtype=np.float32)
    first = ptc[feat[starts]]
    first *= weight[starts, None]
    order = np.argsort(lens, kind="stable")
    sorted_lens = lens[order]
    bounds = np.flatnonzero(np.diff(sorted_lens, prepend=-1)).tolist() + [len(order)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k = int(sorted_lens[lo]) - 1  # rows after the first
        sel = order[lo:hi]
        if k == 0:
            out[sel] = first[sel] + np.float32(0.0)  # reduceat adds an empty pairwise sum (0.0) too
            continue
        step = max(1, _SEG_ROWS // k)
        for c0 in range(0, len(sel), step):
            s = sel[c0 : c0 + step]
            idx = starts[s][:, None] + 1 + np.arange(k)
            rows = ptc[feat[idx]]
            rows *= weight[idx][..., None]
            out[s] = first[s] + _pairwise(rows)
    return out


def _encode(text: str) -> bytes:
    """py3langid's LanguageIdentifier._encode for str: lower if all upper, NFC, UTF-8 (surrogatepass)."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _walk(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """DFA walk over all byte strings at once: (text index, feature) for every feature hit."""
    nextmove, rowbase, output, _, _, _, _, (nm, rb, out) = _tables()
    n = len(encoded)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    flat = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    order = np.argsort(-lengths, kind="stable")  # longest first: at step k the walking texts are a prefix
    starts, slen = starts[order], lengths[order]
    # active[k] = number of texts longer than k
    active = n - np.searchsorted(slen[::-1], np.arange(int(slen[0]) if n else 0), side="right")
    state = np.zeros(n, dtype=np.int64)
    hit_pos: list[np.ndarray] = []
    hit_feat: list[np.ndarray] = []
    k = 0
    for k, m in enumerate(active.tolist()):
        if m <= _TAIL:
            break
        s = nextmove[rowbase[state[:m]] + flat[starts[:m] + k]]
        state[:m] = s
        f = output[s]
        hit = np.flatnonzero(f >= 0)
        if hit.size:
            hit_pos.append(hit)
            hit_feat.append(f[hit])
    else:
        k = len(active)
    if k < len(active):  # the few longest texts: per byte in Python (numpy's per-call cost dominates)
        tail_pos, tail_feat = [], []
        for p in range(int(active[k])):
            st = int(state[p])
            for byte in encoded[int(order[p])][k:]:
                st = nm[rb[st] + byte]
                f = out[st]
                if f >= 0:
                    tail_pos.append(p)
                    tail_feat.append(f)
        hit_pos.append(np.asarray(tail_pos, dtype=np.int64))
        hit_feat.append(np.asarray(tail_feat, dtype=np.int64))
    if not hit_pos:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return order[np.concatenate(hit_pos)], np.concatenate(hit_feat)


def detect_many(texts: Sequence[str]) -> list[tuple[str, float]]:
    """`detect` for many captions at once: the same model and arithmetic as py3langid's
    `LanguageIdentifier.classify` (norm_probs=True), with the per-byte DFA walk and the naive-Bayes
    scoring done for all texts together in numpy instead of once per text in Python.

    Only the float32 summation order of each text's feature scores differs from py3langid's matmul, so
    probabilities agree to ~1e-6 and labels agree except where the two best languages tie to within that.
    """
    n = len(texts)
    if n == 0:
        return []
    _, _, _, ptc, pc, classes, alias_pairs, _ = _tables()
    encoded = [_encode(t) for t in texts]
    text_idx, feat = _walk(encoded)
    # count each (text, feature) pair; sorted by text, so each text's pairs are one contiguous run
    n_feat, n_cls = ptc.shape
    key, counts = np.unique(text_idx * n_feat + feat, return_counts=True)
    text_idx, feat = np.divmod(key, n_feat)
    weight = np.log1p(counts.astype(np.float32))
    nbytes = np.fromiter(map(len, encoded), dtype=np.float64, count=n)
    scale = (1.0 / np.sqrt(np.maximum(nbytes, 1.0))).astype(np.float32)  # py3langid: 1/sqrt(len or 1)
    # Super-blocks of _SEG_BLOCK texts: each text's feature rows summed (_segment_sums, the arithmetic of
    # the np.add.reduceat this replaced, grouped by feature count); then blocks of _BLOCK texts (cache
    # resident) scaled and soft-maxed. Each text's sum and softmax are its own: no result depends on the batch.
    firsts = np.searchsorted(text_idx, np.arange(0, n + _SEG_BLOCK, _SEG_BLOCK))  # first pair of each super-block
    best = np.empty(n, dtype=np.intp)
    probs = np.empty(n, dtype=np.float32)
    sb_scores = np.empty((_SEG_BLOCK, n_cls), dtype=np.float32)
    for k, T0 in enumerate(range(0, n, _SEG_BLOCK)):
        T1 = min(T0 + _SEG_BLOCK, n)
        block = sb_scores[: T1 - T0]
        block.fill(0.0)  # texts without any feature: 0.0 everywhere (uniform), as py3langid
        a, b = int(firsts[k]), int(firsts[k + 1])
        if b > a:
            t = text_idx[a:b]
            starts = np.flatnonzero(np.diff(t, prepend=-1))
            block[t[starts] - T0] = _segment_sums(ptc, feat[a:b], weight[a:b], starts) + pc
        for t0 in range(T0, T1, _BLOCK):
            t1 = min(t0 + _BLOCK, T1)
            scores = block[t0 - T0 : t1 - T0]
            scores *= scale[t0:t1, None]
            np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            for i, j in alias_pairs:  # aliased labels (srl -> sr): fold the duplicate column in
                scores[:, i] += scores[:, j]
                scores[:, j] = 0.0
            bi = scores.argmax(axis=1)
            best[t0:t1] = bi
            probs[t0:t1] = scores[np.arange(t1 - t0), bi]
    probs = probs.tolist()
    return [(classes[b], p) for b, p in zip(best.tolist(), probs)]


def is_reliable(text: str, prob: float, min_probability: float, min_chars: int) -> bool:
    return prob >= min_probability and len(text) >= min_chars


def normalize_page_language(value: str | None) -> str | None:
    """Primary subtag of a declared language ('en-US' -> 'en'); None when absent or not a language tag."""
    if not value:
        return None
    first = value.split(",")[0].strip()
    if not _LANG_TAG.match(first):
        return None
    return first.replace("_", "-").split("-")[0].lower()
