"""Keep the pairs worth publishing: downloaded, scored, over their similarity threshold, not opted out.

One DuckDB query over the shard's three parquet files; every dropped pair is counted by reason so
the materialization says where rows went.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from laion_assets.core.clip.thresholds import threshold_sql
from laion_assets.core.quality import SqlCheck, quote_literal, register_parquet_views

FILTERED_COLUMNS = (
    "key, url, text, page_url, crawl, shard, warc_path, warc_offset, license, language, width, "
    "height, sha256, fetched_at, similarity, threshold, model_id, punsafe, nsfw"
)


@dataclass(frozen=True)
class FilterConfig:
    """`min_similarity`, when set, overrides the per-row (per-language) threshold from scoring."""

    min_similarity: float | None = None
    drop_nsfw: bool = False


@dataclass(frozen=True)
class FilterResult:
    table: pa.Table
    stats: dict[str, int]


def _joined_sql(shard: str, config: FilterConfig) -> str:
    threshold = (
        threshold_sql("s.model_id", "p.caption_language", "p.caption_language_reliable",
                      fallback_sql="s.threshold", scored_sql="s.status = 'scored'")
        if config.min_similarity is None else f"{float(config.min_similarity)!r}"
    )
    return f"""
    SELECT
        p.key, p.url, p.text, p.page_url, p.crawl, {quote_literal(shard)} AS shard, p.warc_path,
        p.warc_offset, p.license, p.caption_language AS language, d.width, d.height, d.sha256,
        d.fetched_at, s.similarity, CAST({threshold} AS FLOAT) AS threshold, s.model_id, s.punsafe,
        s.nsfw,
        CASE
            WHEN d.key IS NULL THEN 'no_download_row'
            WHEN d.status <> 'ok' THEN 'download_' || d.status
            WHEN s.key IS NULL THEN 'not_scored'
            WHEN s.status <> 'scored' THEN 'score_' || s.status
            WHEN s.similarity IS NULL OR isnan(s.similarity) THEN 'no_similarity'
            WHEN s.similarity < {threshold} THEN 'below_threshold'
            WHEN p.optout_page THEN 'page_optout'
            WHEN {str(config.drop_nsfw).lower()} AND s.nsfw = 'NSFW' THEN 'nsfw'
            ELSE NULL
        END AS drop_reason
    FROM pairs p
    LEFT JOIN downloads d USING (key)
    LEFT JOIN scores s USING (key)
    """


def filter_shard(
    pairs_path: str | Path,
    downloads_path: str | Path,
    scores_path: str | Path,
    *,
    shard: str,
    config: FilterConfig = FilterConfig(),
) -> FilterResult:
    with duckdb.connect(":memory:") as con:
        register_parquet_views(
            con, {"pairs": pairs_path, "downloads": downloads_path, "scores": scores_path}
        )
        con.execute(f"CREATE TEMP TABLE judged AS {_joined_sql(shard, config)}")
        table = con.sql(
            f"SELECT {FILTERED_COLUMNS} FROM judged WHERE drop_reason IS NULL ORDER BY key"
        ).to_arrow_table()
        stats = {"pairs_in": con.sql("SELECT count(*) FROM judged").fetchall()[0][0]}
        for reason, n in con.sql(
            "SELECT drop_reason, count(*) FROM judged WHERE drop_reason IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall():
            stats[f"dropped_{reason}"] = n
    stats["pairs_kept"] = table.num_rows
    return FilterResult(table, stats)


CHECKS = [
    SqlCheck(
        name="filtered_over_threshold",
        description="Every kept pair's similarity is a number at or over its threshold.",
        sql="SELECT key, similarity, threshold FROM filtered "
        "WHERE similarity IS NULL OR isnan(similarity) OR similarity < threshold",
        blocking=True,
    ),
    SqlCheck(
        name="filtered_downloaded",
        description="Every kept pair has an image that was downloaded (width, height, sha256).",
        sql="SELECT key FROM filtered WHERE width IS NULL OR height IS NULL OR sha256 IS NULL",
    ),
]
