"""DuckDB checks for `image_downloads` over views `pairs` (the shard's input), `downloads` (the
status parquet) and `tar_members` (`list_tar_members(out_dir)`: tar_path, member). Each SQL selects
the offending rows; zero rows = pass. The vocabulary is generated from REASONS, so the checks
cannot drift from the code that writes the rows."""

from __future__ import annotations

from laion_assets.core.checks import SqlCheck, quote_literal

from .status import REASONS

_REASON_VALUES = ", ".join(f"({quote_literal(r)}, {quote_literal(s)})" for r, s in REASONS.items())

CHECKS: list[SqlCheck] = [
    SqlCheck(
        name="downloads_one_row_per_pair",
        description="Exactly one status row per input pair, same keys and URLs: nothing silently lost.",
        blocking=True,
        sql="""
            WITH p AS (SELECT key, any_value(url) AS url, count(*) AS n FROM pairs GROUP BY key),
                 d AS (SELECT key, any_value(url) AS url, count(*) AS n FROM downloads GROUP BY key)
            SELECT coalesce(p.key, d.key) AS key, p.n AS pair_rows, d.n AS download_rows,
                   p.url AS pair_url, d.url AS download_url
            FROM p FULL OUTER JOIN d ON p.key = d.key
            WHERE p.key IS NULL OR d.key IS NULL OR d.n <> 1 OR p.url IS DISTINCT FROM d.url
        """,
    ),
    SqlCheck(
        name="downloads_ok_rows_complete",
        description="Every ok row has width, height, a sha256, a PDQ hash (64 hex, quality 0..100), "
        "md5/sha1 well-formed where recorded (null on rows carried over from before them), and names "
        "its tar member `[<shard>_]<key>.jpg` (no dot in the WebDataset key); no reason. "
        "Non-ok rows carry no PDQ.",
        blocking=True,
        sql="""
            SELECT key, status, width, height, sha256, md5, sha1, pdq, pdq_quality, tar_path, tar_member, reason
            FROM downloads
            WHERE (status = 'ok' AND (
                width IS NULL OR width <= 0 OR height IS NULL OR height <= 0
                OR sha256 IS NULL OR NOT regexp_full_match(sha256, '[0-9a-f]{{64}}')
                OR pdq IS NULL OR NOT regexp_full_match(pdq, '[0-9a-f]{{64}}')
                OR pdq_quality IS NULL OR pdq_quality NOT BETWEEN 0 AND 100
                OR NOT regexp_full_match(coalesce(md5, ''), '([0-9a-f]{{32}})?')
                OR NOT regexp_full_match(coalesce(sha1, ''), '([0-9a-f]{{40}})?')
                OR tar_path IS NULL OR tar_member IS NULL
                OR NOT (tar_member = key || '.jpg' OR suffix(tar_member, '_' || key || '.jpg'))
                OR NOT regexp_full_match(tar_member, '[A-Za-z0-9_-]+[.]jpg')
                OR reason IS NOT NULL))
               OR (status <> 'ok' AND pdq IS NOT NULL)
        """,
    ),
    SqlCheck(
        name="downloads_tar_members_unique",
        description="No two status rows name the same tar member (member keys are unique).",
        blocking=True,
        sql="""
            SELECT tar_member, count(*) AS n FROM downloads WHERE tar_member IS NOT NULL
            GROUP BY tar_member HAVING count(*) > 1
        """,
    ),
    SqlCheck(
        name="downloads_ok_rows_in_tars",
        description="Every ok row's image member is actually present in its tar (with caption and json).",
        blocking=True,
        sql="""
            WITH d AS (SELECT key, tar_path, tar_member,
                              CASE WHEN suffix(tar_member, '.jpg')
                                   THEN left(tar_member, length(tar_member) - 4) ELSE key END AS stem
                       FROM downloads WHERE status = 'ok'),
                 want AS (SELECT d.*, e.ext, d.stem || '.' || e.ext AS member
                          FROM d CROSS JOIN (VALUES ('jpg'), ('txt'), ('json')) e(ext)),
                 found AS (SELECT w.key, w.tar_path, w.tar_member, w.ext, count(t.member) AS n
                           FROM want w LEFT JOIN tar_members t
                                ON t.tar_path = w.tar_path AND t.member = w.member
                           GROUP BY w.key, w.tar_path, w.tar_member, w.ext)
            SELECT key, tar_path, tar_member,
                   sum(n) FILTER (WHERE ext = 'jpg') AS jpg,
                   sum(n) FILTER (WHERE ext = 'txt') AS txt,
                   sum(n) FILTER (WHERE ext = 'json') AS json
            FROM found
            GROUP BY key, tar_path, tar_member
            HAVING jpg <> 1 OR txt <> 1 OR json <> 1
        """,
    ),
    SqlCheck(
        name="downloads_reason_vocabulary",
        description="Status is ok/skipped/failed; non-ok rows carry a reason from the fixed "
        "vocabulary that belongs to that status.",
        blocking=True,
        sql=f"""
            WITH vocab(reason, status) AS (VALUES {_REASON_VALUES})
            SELECT d.key, d.status, d.reason FROM downloads d
            LEFT JOIN vocab v ON v.reason = d.reason
            WHERE d.status NOT IN ('ok', 'skipped', 'failed')
               OR (d.status <> 'ok' AND (d.reason IS NULL OR v.reason IS NULL OR v.status <> d.status))
        """,
    ),
]
