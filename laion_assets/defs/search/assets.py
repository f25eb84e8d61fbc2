"""`search_index`: a k-NN index per release variant, rebuilt whenever a release is published or
re-derived (it is in the publish group, so `publish_job` and `publish_job` run it, and its
automation is eager on `published_dataset`). Older index versions are deleted, so a row a takedown
removed is in no index. Its metadata carries the audit report (a table and a bar plot) and the
takedown expansion's candidate count."""


import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
from pydantic import Field

from laion_assets.core.search import audit, expansion, layout
from laion_assets.core.search import index as knn
from laion_assets.core.search.build import prune_indices, publish_index, release_variants
from laion_assets.core.search.pdq import PdqTable
from laion_assets.defs.automation.schedules import PUBLISH_CONDITION
from laion_assets.defs.clip.resources import ClipModelResource
from laion_assets.defs.lib.resources import StorageResource

CHECK = dg.AssetCheckSpec(
    "search_index_matches_release", asset="search_index",
    description="Every variant's index holds exactly the rows of its latest release (nothing removed "
    "or withdrawn stays searchable) and no older index version is left.",
)


class SearchIndexConfig(dg.Config):
    audit_queries: list[str] = Field(default=list(audit.DEFAULT_AUDIT_QUERIES),
                                     description="Standing text queries run against every release (the audit report).")
    audit_k: int = Field(default=audit.DEFAULT_AUDIT_K, description="Top hits per audit query.")
    alert_similarity: float = Field(default=audit.DEFAULT_ALERT_SIMILARITY,
                                    description="Cosine similarity at which an audit hit is counted.")
    expansion_neighbours: int = Field(default=expansion.DEFAULT_NEIGHBOURS,
                                      description="Nearest neighbours listed per removed row (candidates only).")
    expansion_min_similarity: float = Field(default=expansion.DEFAULT_MIN_SIMILARITY,
                                            description="Cosine similarity a neighbour needs to be a candidate.")


def _load(st, variant: str, version: str):
    base = layout.index_dir(variant, version)
    meta = pq.read_table(st.local_file(f"{base}/{layout.METADATA_FILE}"))
    return meta, knn.read(st.local_file(f"{base}/{layout.IMAGE_INDEX}"))


@dg.asset(
    deps=[dg.AssetKey("published_dataset")],
    check_specs=[CHECK],
    automation_condition=PUBLISH_CONDITION,
    group_name="publish",
    kinds={"faiss", "parquet"},
    description="k-NN indices (faiss) over each release variant's stored image and text embeddings, "
    "with the row metadata beside them, in clip-retrieval's layout under search/ followed by the "
    "variant and version. Serve them with `python -m laion_assets.search --root data`. Metadata: "
    "the audit queries' top hits and the takedown expansion's candidates.",
)
def search_index(context: dg.AssetExecutionContext, config: SearchIndexConfig, storage: StorageResource,
                 clip_model: ClipModelResource) -> dg.MaterializeResult:
    st = storage.get()
    variants = release_variants(st)
    if not variants:
        raise dg.Failure("no published release under releases/: materialize published_dataset first")
    from laion_assets.core.search.encode import QueryEncoder  # torch: only in the step, never at load

    encoder = QueryEncoder(clip_model.model_name, clip_model.pretrained, device="cpu")
    meta: dict[str, dg.MetadataValue] = {}
    problems, reports = [], []
    for variant, version in variants.items():
        pointer = layout.latest_pointer(variant)
        previous = st.read_bytes(pointer).decode().strip() if st.exists(pointer) else None
        old = _load(st, variant, previous) if previous and previous != version and \
            st.exists(f"{layout.index_dir(variant, previous)}/{layout.MANIFEST}") else None
        manifest = publish_index(st, variant, version)
        new_meta, new_index = _load(st, variant, version)
        new_ids = np.asarray(new_meta.column("SAMPLE_ID").to_pylist(), np.int64)

        n_candidates = 0
        if old is not None:
            old_meta, old_index = old
            old_ids = np.asarray(old_meta.column("SAMPLE_ID").to_pylist(), np.int64)
            gone = np.flatnonzero(~np.isin(old_ids, new_ids))
            vectors = np.stack([old_index.reconstruct(int(i)) for i in gone]) if len(gone) else np.zeros((0, 1), np.float32)
            pdqs = old_meta.column("pdq").to_pylist()
            cands = expansion.takedown_candidates(
                old_ids[gone], vectors, [pdqs[i] for i in gone], new_index, new_ids,
                PdqTable(new_meta.column("pdq").to_pylist(), new_meta.column("pdq_quality").to_pylist()),
                k=config.expansion_neighbours, min_similarity=config.expansion_min_similarity)
            n_candidates = cands.num_rows
            with tempfile.TemporaryDirectory() as tmp:
                pq.write_table(cands, Path(tmp) / "c.parquet")
                st.upload_file(Path(tmp) / "c.parquet", f"{layout.index_dir(variant, version)}/{layout.CANDIDATES}")
        deleted = prune_indices(st, variant, version)

        report = audit.run_audit(encoder.text, new_index, new_ids, new_meta.column("NSFW").to_pylist(),
                                 config.audit_queries, k=config.audit_k, alert_similarity=config.alert_similarity)
        reports.append(f"### {variant} {version}\n\n" + audit.audit_markdown(report, alert_similarity=config.alert_similarity))
        release_rows = manifest["release_rows"]
        if manifest["rows"] != release_rows:
            problems.append(f"{variant}: {manifest['rows']} rows indexed of {release_rows} released")
        meta[f"{variant}_rows"] = dg.MetadataValue.int(manifest["rows"])
        meta[f"{variant}_index"] = dg.MetadataValue.text(f"{manifest['factory']} nprobe={manifest['nprobe']}")
        meta[f"{variant}_path"] = dg.MetadataValue.path(st.uri(layout.index_dir(variant, version)))
        meta[f"{variant}_takedown_candidates"] = dg.MetadataValue.int(n_candidates)
        meta[f"{variant}_audit_hits_over_alert"] = dg.MetadataValue.int(sum(report.column("hits_over_alert").to_pylist()))
        context.log.info(f"{variant}/{version}: {manifest['rows']} rows indexed; deleted old indices {deleted or 'none'}")
    meta["audit_report"] = dg.MetadataValue.md("\n\n".join(reports))
    return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
        check_name=CHECK.name, passed=not problems,
        metadata={"problems": dg.MetadataValue.text("; ".join(problems) or "none")})])
