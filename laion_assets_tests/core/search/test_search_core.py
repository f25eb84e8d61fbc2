"""core/search on generated vectors: index kinds and recall against exact search, reproducibility,
PDQ matching equal to the takedown path's distance, SemDeDup, takedown expansion, audit."""

from __future__ import annotations

import datetime
import json

import faiss
import numpy as np
import pytest

from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, load_removal_list, pdq_distance, sources_in_dir
from laion_assets.core.removal.requests import read_request
from laion_assets.core.search import index as knn
from laion_assets.core.search.audit import audit_markdown, run_audit
from laion_assets.core.search.expansion import takedown_candidates
from laion_assets.core.search.pdq import PdqTable
from laion_assets.core.search.requests import BadRemovalRequest, file_removal_request
from laion_assets.core.search.semdedup import REASON, drop_rows, semantic_dedup
from laion_assets.core.storage.local import LocalStorage


def _clustered(n: int, dim: int = 64, centers: int = 50, seed: int = 0) -> np.ndarray:
    """A mixture of Gaussians (fixed centres); `seed` picks the draws, so queries share the centres."""
    c = np.random.default_rng(12345).standard_normal((centers, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    return knn.unit_rows(c[rng.integers(0, centers, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32))


def test_small_indices_are_exact_large_ones_ivf_with_high_recall():
    assert knn.factory_for(1000) == "Flat" and knn.factory_for(1_000_000).startswith("IVF")
    x = _clustered(20_000)
    q = _clustered(200, seed=1)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    truth = exact.search(q, 10)[1]
    index, spec = knn.build(x, "IVF256,Flat")
    assert spec.nprobe == 8
    found = knn.search(index, q, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.95
    flat, _ = knn.build(x[:500])
    sims, ids = knn.search(flat, x[:3], 1)
    assert list(ids[:, 0]) == [0, 1, 2] and np.allclose(sims[:, 0], 1, atol=1e-5)


def test_index_build_is_reproducible(tmp_path):
    x = _clustered(5000)
    for name in ("a", "b"):
        knn.write(knn.build(x, "IVF64,Flat")[0], tmp_path / name)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_pdq_table_agrees_with_the_takedown_distance():
    rng = np.random.default_rng(3)
    base = f"{int(rng.integers(0, 2**62)):016x}" * 4
    hashes = [f"{int(base, 16) ^ ((1 << b) - 1):064x}" for b in (0, 5, 31, 32, 90)] + [None, "zz" * 32]
    table = PdqTable(hashes, [100, 100, 100, 100, 100, 100, 100])
    got = table.matches(base)
    assert [d for _, d in got] == [pdq_distance(h, base) for h in hashes[:3]]
    assert all(d <= PDQ_MAX_DISTANCE for _, d in got) and [i for i, _ in got] == [0, 1, 2]
    low = PdqTable(hashes[:1], [10])
    assert low.matches(base) == []  # quality under the floor: not a usable hash


def test_semantic_dedup_drops_near_copies_keeps_the_best_scored_and_is_reproducible():
    rng = np.random.default_rng(0)
    base = knn.unit_rows(rng.standard_normal((3000, 64)).astype(np.float32))
    copies = base[:200] + 0.01 * rng.standard_normal((200, 64)).astype(np.float32)
    x = np.concatenate([base, copies])
    scores = rng.random(len(x))
    ids = np.arange(len(x), dtype=np.int64) * 7 + 11
    r = semantic_dedup(x, scores, ids)
    dropped = np.flatnonzero(r.dropped)
    assert len(dropped) == 200
    for i in dropped:  # exactly one of each planted pair is dropped, the lower-scored one
        j = r.duplicate_of[i]
        assert i % 3000 == j % 3000 and i < 200 or i >= 3000
        assert scores[j] >= scores[i]
    again = semantic_dedup(x, scores, ids)
    assert np.array_equal(again.duplicate_of, r.duplicate_of) and np.array_equal(again.cluster, r.cluster)
    table = drop_rows(ids, r)
    assert set(table.column("reason").to_pylist()) == {REASON} and table.num_rows == 200
    assert semantic_dedup(x, scores, ids, min_cosine=0.99999).dropped.sum() < 200
    with pytest.raises(ValueError):
        semantic_dedup(x, scores[:10])


def test_takedown_expansion_lists_neighbours_and_pdq_copies_only_as_candidates():
    x = _clustered(300)
    removed = x[:1]
    near = knn.unit_rows(removed + 0.001)
    pool = np.concatenate([near, x[1:]])
    index, _ = knn.build(pool)
    ids = np.arange(1000, 1000 + len(pool), dtype=np.int64)
    h = "ab" * 32
    pdq = PdqTable([None, f"{int(h, 16) ^ 0b111:064x}"] + [None] * (len(pool) - 2), [100] * len(pool))
    cands = takedown_candidates(np.array([5]), removed, [h], index, ids, pdq, k=5, min_similarity=0.99).to_pylist()
    by = {c["candidate_sample_id"]: c for c in cands}
    assert by[1000]["via"] == "embedding" and by[1000]["similarity"] > 0.99
    assert by[1001]["via"] == "pdq" and by[1001]["pdq_distance"] == 3
    assert all(c["removed_sample_id"] == 5 for c in cands)


def test_audit_counts_hits_and_renders_a_table():
    x = _clustered(100)
    index, _ = knn.build(x)
    table = run_audit(lambda q: x[0] if q == "close" else -x[0], index, np.arange(100), ["NSFW"] + ["UNLIKELY"] * 99,
                      ["close", "far"], k=5, alert_similarity=0.9)
    close, far = table.to_pylist()
    assert close["hits_over_alert"] >= 1 and close["nsfw_tagged_hits"] == 1 and close["top_sample_ids"][0] == 0
    assert far["hits_over_alert"] == 0
    md = audit_markdown(table, alert_similarity=0.9)
    assert md.count("\n") == 3 and "█" in md


def test_removal_request_file_is_valid_and_idempotent(tmp_path):
    st = LocalStorage(tmp_path)
    row = {"URL": "http://127.0.0.1/img/a.jpg", "sha256": "A" * 64}
    day = datetime.date(2026, 12, 1)
    rid, rel = file_removal_request(st, row, reason="mine, see\nmy site", contact="a@b.c", today=day)
    assert file_removal_request(st, row, reason="mine, see\nmy site", contact="a@b.c", today=day) == (rid, rel)
    name = rel.rsplit("/", 1)[-1]
    assert rid == read_request(name, str(tmp_path / rel), (tmp_path / rel).read_bytes()).request_id
    (receipt,) = (tmp_path / "removal" / "receipts").iterdir()
    assert receipt.name == f"{rid}.json" and json.loads(receipt.read_text())["status"] == "pending"
    entries, rejected = load_removal_list(sources_in_dir(tmp_path / "removal" / "requests"))
    assert rejected.num_rows == 0
    assert sorted(zip(entries.column("kind").to_pylist(), entries.column("listed_on").to_pylist())) == [
        ("image_sha256", "2026-12-01"), ("url_sha256", "2026-12-01")]
    assert "a.jpg" not in (tmp_path / rel).read_text()
    with pytest.raises(BadRemovalRequest, match="contact"):
        file_removal_request(st, row, reason="x", contact="")
    assert len(list((tmp_path / "removal" / "requests").iterdir())) == 1
