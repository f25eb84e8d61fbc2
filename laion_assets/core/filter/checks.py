"""The filter stage's checks over the shard's `filtered`, `drops` and `pairs` views."""

from laion_assets.core.checks import SqlCheck

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
    SqlCheck(
        name="filtered_drop_log_accounts_for_every_pair",
        description="Every extracted pair is either kept or in the drop log with a reason, exactly once.",
        sql="""
            SELECT key, count(*) AS n FROM (
                SELECT key FROM filtered UNION ALL SELECT key FROM drops
            ) GROUP BY key HAVING count(*) <> 1
            UNION ALL
            SELECT key, 0 FROM pairs WHERE key NOT IN (SELECT key FROM filtered UNION ALL SELECT key FROM drops)
        """,
        blocking=True,
    ),
]
