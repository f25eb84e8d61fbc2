"""Checks over the `manifest` view (every crawl manifest)."""

from laion_assets.core.checks import SqlCheck

CHECKS = [
    SqlCheck(
        name="manifest_unique_files",
        description="Each WARC file is listed once, in exactly one shard.",
        sql="SELECT warc_uri, count(*) AS n FROM manifest GROUP BY warc_uri HAVING count(*) > 1",
        blocking=True,
    ),
    SqlCheck(
        name="manifest_shard_sizes",
        description="Every shard of a crawl but its last holds the same number of files (K), and "
        "the last holds at most K.",
        sql="""
        WITH s AS (SELECT crawl, shard, count(*) AS n FROM manifest GROUP BY crawl, shard),
             m AS (SELECT crawl, max(n) AS k, max(shard) AS last_shard FROM s GROUP BY crawl)
        SELECT s.crawl, s.shard, s.n, m.k FROM s JOIN m USING (crawl)
        WHERE s.shard <> m.last_shard AND s.n <> m.k
        """,
    ),
]
