"""Keep the pairs worth publishing: downloaded, scored, over their similarity threshold, not opted out.

One DuckDB query over the shard's three parquet files judges every pair once; each pair lands either
in the kept table or in the drop log with one reason (the first rule it fails, in the order of
`_drop_reason_sql`), so the release card's funnel adds up row for row. Removal lists, placeholder
images, cross-crawl dedup and the NSFW policy of each release variant are applied later, over all
shards (dbt and the release), so a removal change re-derives a release without touching shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laion_assets.core.clip.thresholds import threshold_sql as model_threshold_sql
from laion_assets.core.lib.ids import sample_id_sql
from laion_assets.core.removal.canonical import canonical_columns
from laion_assets.core.removal.entries import host_sql
from laion_assets.core.clip.nsfw_head import NsfwHead
from laion_assets.core.checks import ViewSource, quote_literal, register_parquet_views
from laion_assets.core.schemas.filtered import DROP_LOG_SCHEMA, FILTERED_SCHEMA
from laion_assets.core.lib.validation import require_range

# Download reasons that are the site owner's opt-out (download status vocabulary): `opt_out:<rule>`.
OPT_OUT_REASONS = ("page_optout", "robots_txt", "x_robots_tag", "tdm_reservation")
# Download status columns newer downloaders write; NULL when a shard's status predates them.
OPTIONAL_DOWNLOAD_COLUMNS = {"md5": "VARCHAR", "sha1": "VARCHAR", "pdq": "VARCHAR", "pdq_quality": "INTEGER"}


@dataclass(frozen=True)
class FilterConfig:
    """`min_similarity`, when set, overrides the per-row (per-language) threshold from scoring.

    `drop_nsfw_over`: a shard-level punsafe cut (off by default: release variants apply theirs).
    `nsfw_head`: a trained head that replaces the zero-shot `punsafe` (see core/clip/nsfw_head.py).
    """

    min_similarity: float | None = None
    drop_nsfw_over: float | None = None
    nsfw_head: NsfwHead | None = None

    def __post_init__(self) -> None:
        if self.min_similarity is not None:
            require_range("min_similarity", self.min_similarity, -1.0, 1.0)
        if self.drop_nsfw_over is not None:
            require_range("drop_nsfw_over", self.drop_nsfw_over, 0.0, 1.0)


@dataclass(frozen=True)
class FilterResult:
    table: pa.Table
    drops: pa.Table
    stats: dict[str, int]


def threshold_sql(config: FilterConfig) -> str:
    """The similarity threshold a row must reach: the one place it is chosen (the CLIP stage's table
    keyed by model and language group, `core/clip/thresholds.py`), unless `min_similarity` is set."""
    if config.min_similarity is not None:
        return f"{float(config.min_similarity)!r}"
    return model_threshold_sql("s.model_id", "p.caption_language", "p.caption_language_reliable",
                               fallback_sql="s.threshold", scored_sql="s.status = 'scored'")


def _drop_reason_sql(config: FilterConfig, punsafe: str) -> str:
    threshold = threshold_sql(config)
    opt_outs = ", ".join(quote_literal(r) for r in OPT_OUT_REASONS)
    nsfw = (
        f"WHEN {punsafe} IS NULL OR {punsafe} > {float(config.drop_nsfw_over)!r} THEN 'nsfw_policy'"
        if config.drop_nsfw_over is not None else ""
    )
    return f"""
        CASE
            WHEN p.optout_page THEN 'opt_out:page_optout'
            WHEN d.key IS NULL THEN 'not_downloaded:no_download_row'
            WHEN d.status = 'skipped' AND d.reason = 'removed' THEN coalesce(d.error, 'removal:unknown')
            WHEN d.status <> 'ok' AND d.reason IN ({opt_outs}) THEN 'opt_out:' || d.reason
            WHEN d.status <> 'ok' THEN 'not_downloaded:' || coalesce(d.reason, d.status)
            WHEN s.key IS NULL THEN 'not_scored:no_score_row'
            WHEN s.status <> 'scored' THEN 'not_scored:' || coalesce(s.reason, s.status)
            WHEN s.similarity IS NULL OR isnan(s.similarity) THEN 'no_similarity'
            WHEN s.similarity < {threshold} THEN 'below_threshold'
            {nsfw}
            ELSE NULL
        END"""


def _download_columns(con: duckdb.DuckDBPyConnection) -> str:
    have = {r[0] for r in con.sql("DESCRIBE downloads").fetchall()}
    return ", ".join(
        f"d.{c}" if c in have else f"CAST(NULL AS {t}) AS {c}" for c, t in OPTIONAL_DOWNLOAD_COLUMNS.items()
    )


def _head_punsafe(scores: ViewSource, embeddings_dir: Path, head: NsfwHead) -> pa.Table:
    """(key, punsafe_head) for every scored row, from the stored float16 image embeddings."""
    if not isinstance(scores, pa.Table):
        import pyarrow.parquet as pq

        scores = pq.read_table(scores)
    scores = scores.select(["key", "embedding_row", "model_id"])
    models = set(scores.column("model_id").to_pylist())
    if models - {head.clip_model_id}:
        raise ValueError(
            f"NSFW head {head.head_id} was trained on {head.clip_model_id} embeddings; "
            f"this shard was scored with {sorted(models)}"
        )
    scored = scores.filter(pc.is_valid(scores.column("embedding_row")))
    keys = scored.column("key").to_pylist()
    idx = scored.column("embedding_row").to_numpy().astype(np.int64)
    emb = np.load(embeddings_dir / "img_emb.npy", mmap_mode="r")
    values = head.punsafe(np.asarray(emb[idx])) if len(idx) else np.zeros(0, np.float32)
    return pa.table({"key": pa.array(keys, pa.string()), "punsafe_head": pa.array(values, pa.float32())})


def filter_shard(
    pairs_path: ViewSource,
    downloads_path: ViewSource,
    scores_path: ViewSource,
    *,
    shard: str,
    config: FilterConfig = FilterConfig(),
    embeddings_dir: Path | None = None,
) -> FilterResult:
    """Judge every pair of a shard: (kept table, drop log, counts by reason). Inputs are parquet
    paths or Arrow tables."""
    with duckdb.connect(":memory:") as con:
        register_parquet_views(con, {"pairs": pairs_path, "downloads": downloads_path, "scores": scores_path})
        if config.nsfw_head is not None:
            if embeddings_dir is None:
                raise ValueError("an NSFW head needs the shard's embeddings directory")
            con.register("head", _head_punsafe(scores_path, embeddings_dir, config.nsfw_head))
            head_join = "LEFT JOIN head h ON h.key = p.key"
            punsafe = "h.punsafe_head"
            source = quote_literal(config.nsfw_head.head_id)
        else:
            head_join, punsafe = "", "s.punsafe"
            source = "CASE WHEN s.punsafe IS NULL THEN NULL ELSE 'zero_shot:' || s.model_id END"
        con.execute(f"""
            CREATE TEMP TABLE judged AS
            SELECT p.key, p.url, p.text, {sample_id_sql('p.url', 'p.text')} AS sample_id,
                   coalesce({host_sql('p.url')}, '') AS url_host, p.page_url, p.crawl, {quote_literal(shard)} AS shard, p.warc_path,
                   p.warc_offset, p.license, CASE WHEN p.caption_language_reliable THEN p.caption_language END AS language, d.width, d.height, d.sha256,
                   {_download_columns(con)}, d.fetched_at, s.similarity,
                   CAST({threshold_sql(config)} AS FLOAT) AS threshold, s.model_id, s.weights_id,
                   {punsafe} AS punsafe, {source} AS punsafe_source, s.nsfw,
                   {_drop_reason_sql(config, punsafe)} AS drop_reason
            FROM pairs p
            LEFT JOIN downloads d USING (key)
            LEFT JOIN scores s USING (key)
            {head_join}
        """)
        computed = ("url_canonical", "host_canonical")
        cols = ", ".join(n for n in FILTERED_SCHEMA.names if n not in computed)
        table = con.sql(f"SELECT {cols} FROM judged WHERE drop_reason IS NULL ORDER BY key").to_arrow_table()
        # Removal matching compares canonical forms: computed once per kept row, here (Python: ada-url).
        url_canonical, host_canonical = canonical_columns(table.column("url").to_pylist())
        table = table.append_column("url_canonical", url_canonical).append_column("host_canonical", host_canonical)
        table = table.select(FILTERED_SCHEMA.names)
        drops = con.sql("""
            SELECT crawl, shard, key, url, text, sample_id, drop_reason AS reason
            FROM judged WHERE drop_reason IS NOT NULL ORDER BY key
        """).to_arrow_table()
        stats = {"pairs_in": con.sql("SELECT count(*) FROM judged").fetchall()[0][0]}
        for reason, n in con.sql(
            "SELECT drop_reason, count(*) FROM judged WHERE drop_reason IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall():
            stats[f"dropped_{reason}"] = n
    stats["pairs_kept"] = table.num_rows
    return FilterResult(table.cast(FILTERED_SCHEMA), drops.cast(DROP_LOG_SCHEMA), stats)
