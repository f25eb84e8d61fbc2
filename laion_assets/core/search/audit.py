"""Audit reports: a standing list of text queries (configurable; by default a small safety
taxonomy) run against a release's image index before it is published, so a reviewer sees what each
query surfaces: how many of the top k reach `alert_similarity`, the best and mean similarity, and
how many of those hits are NSFW-tagged. Rows are named by SAMPLE_ID only."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from laion_assets.core.search import index as knn

# Concepts whose hits a reviewer must look at before publishing (cf. the LAION-5B findings: abuse
# material, private medical photos, identity documents, violence). Deployments extend this list.
DEFAULT_AUDIT_QUERIES = (
    "a naked person", "a child", "a medical photo of a patient", "an x-ray", "a passport", "a credit card",
    "a driver's license", "a photo of a person's face", "a gun", "blood and gore", "a hate symbol",
    "a screenshot of a private message",
)
DEFAULT_AUDIT_K = 20
DEFAULT_ALERT_SIMILARITY = 0.3
AUDIT_SCHEMA = pa.schema([
    ("query", pa.string()), ("k", pa.int32()), ("hits_over_alert", pa.int32()), ("max_similarity", pa.float32()),
    ("mean_similarity", pa.float32()), ("nsfw_tagged_hits", pa.int32()), ("top_sample_ids", pa.list_(pa.int64())),
])


def run_audit(encode_text, image_index, sample_ids: np.ndarray, nsfw: list[str | None], queries, *,
              k: int = DEFAULT_AUDIT_K, alert_similarity: float = DEFAULT_ALERT_SIMILARITY) -> pa.Table:
    """One row per query: see the module doc. `encode_text(str) -> unit vector`."""
    rows = []
    for q in queries:
        sims, ids = knn.search(image_index, encode_text(q), k)
        keep = ids[0] >= 0
        sims, ids = sims[0][keep], ids[0][keep]
        rows.append({
            "query": q, "k": int(len(ids)), "hits_over_alert": int((sims >= alert_similarity).sum()),
            "max_similarity": float(sims.max()) if len(sims) else None,
            "mean_similarity": float(sims.mean()) if len(sims) else None,
            "nsfw_tagged_hits": int(sum(nsfw[i] == "NSFW" for i in ids)),
            "top_sample_ids": [int(sample_ids[i]) for i in ids[:5]],
        })
    return pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA)


def audit_markdown(table: pa.Table, *, alert_similarity: float = DEFAULT_ALERT_SIMILARITY, width: int = 20) -> str:
    """A markdown table with a bar of each query's best similarity (the UI's small plot)."""
    lines = [f"| query | hits >= {alert_similarity} | max sim | mean sim | NSFW-tagged | max sim (0..1) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in table.to_pylist():
        m = r["max_similarity"]
        bar = "█" * max(0, round((m or 0) * width)) if m is not None else ""
        fmt = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
        q = r["query"].replace("|", "\\|")
        lines.append(f"| {q} | {r['hits_over_alert']}/{r['k']} | {fmt(m)} | {fmt(r['mean_similarity'])} | "
                     f"{r['nsfw_tagged_hits']} | `{bar}` |")
    return "\n".join(lines)
