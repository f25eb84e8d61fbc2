"""DuckDB checks on `clip_scores`, over views `downloads`, `scores`, `embeddings`.

`embeddings` is `embedding_table(out_dir)` written as parquet: (embedding_row, image_norm, text_norm).
Each SQL selects the offending rows.
"""

from laion_assets.core.checks import SqlCheck

SIMILARITY_IN_RANGE = SqlCheck(
    name="clip_similarity_in_range",
    description="Every scored row has a similarity in [-1, 1] (cosine), never NULL or NaN.",
    sql="""
        SELECT key, similarity FROM scores
        WHERE status = 'scored'
          AND (similarity IS NULL OR isnan(similarity) OR similarity < -1 - {tol} OR similarity > 1 + {tol})
    """,
    blocking=True,
    params={"tol": 1e-4},
)

ONE_EMBEDDING_PER_SCORED_ROW = SqlCheck(
    name="clip_one_embedding_per_scored_row",
    description=(
        "Scored rows and embedding rows match one to one, and both stored float16 embeddings of each "
        "row have unit L2 norm within tolerance."
    ),
    sql="""
        WITH s AS (SELECT key, embedding_row FROM scores WHERE status = 'scored')
        SELECT 'scored row without embedding' AS problem, s.key, s.embedding_row
        FROM s LEFT JOIN embeddings e USING (embedding_row) WHERE e.embedding_row IS NULL
        UNION ALL
        SELECT 'embedding row used twice', min(key), embedding_row FROM s
        GROUP BY embedding_row HAVING count(*) > 1
        UNION ALL
        SELECT 'embedding without scored row', NULL, e.embedding_row
        FROM embeddings e LEFT JOIN s USING (embedding_row) WHERE s.key IS NULL
        UNION ALL
        SELECT 'embedding not unit norm', s.key, e.embedding_row
        FROM embeddings e JOIN s USING (embedding_row)
        WHERE abs(e.image_norm - 1) > {norm_tol} OR abs(e.text_norm - 1) > {norm_tol}
           OR isnan(e.image_norm) OR isnan(e.text_norm)
        UNION ALL
        SELECT 'unscored row with embedding', key, embedding_row FROM scores
        WHERE status <> 'scored' AND embedding_row IS NOT NULL
    """,
    blocking=True,
    params={"norm_tol": 1e-2},
)

EVERY_OK_DOWNLOAD_SCORED_OR_REASON = SqlCheck(
    name="clip_every_ok_download_scored_or_reason",
    description=(
        "Each `ok` download has exactly one score row, scored or with a reason; no score row for a "
        "key that was not an `ok` download."
    ),
    sql="""
        SELECT 'ok download without score row' AS problem, d.key FROM downloads d
        LEFT JOIN scores s USING (key) WHERE d.status = 'ok' AND s.key IS NULL
        UNION ALL
        SELECT 'not scored and no reason', key FROM scores WHERE status <> 'scored' AND reason IS NULL
        UNION ALL
        SELECT 'duplicate score row', key FROM scores GROUP BY key HAVING count(*) > 1
        UNION ALL
        SELECT 'score row for a non-ok download', s.key FROM scores s
        LEFT JOIN (SELECT key FROM downloads WHERE status = 'ok') d USING (key) WHERE d.key IS NULL
    """,
    blocking=True,
)

MODEL_ID_CONSTANT = SqlCheck(
    name="clip_model_id_constant",
    description="One model_id and one weights_id across the shard (no mixed-model scores).",
    sql="""
        SELECT model_id, weights_id, count(*) AS n FROM scores GROUP BY model_id, weights_id
        HAVING (SELECT count(*) FROM (SELECT DISTINCT model_id, weights_id FROM scores)) > 1
    """,
    blocking=True,
)

CHECKS: list[SqlCheck] = [
    SIMILARITY_IN_RANGE,
    ONE_EMBEDDING_PER_SCORED_ROW,
    EVERY_OK_DOWNLOAD_SCORED_OR_REASON,
    MODEL_ID_CONSTANT,
]
