"""The diff between a variant's previous version and this one: removed rows by hashes, with a reason."""

from __future__ import annotations

import duckdb
import pyarrow as pa

def release_diff(previous: pa.Table, current_ids: pa.Array, reasons: pa.Table) -> pa.Table:
    """Rows of the previous version not in this one, as hashes: (url_sha256, SAMPLE_ID, reason).

    `previous` has SAMPLE_ID and URL; `reasons` has sample_id and reason (drop log + NSFW drops);
    a row gone without a drop-log entry gets `not_in_build` (e.g. its shard is gone).
    """
    with duckdb.connect(":memory:") as con:
        con.register("prev", previous.select(["SAMPLE_ID", "URL"]))
        con.register("cur", pa.table({"id": current_ids}))
        con.register("why", reasons)
        return con.sql("""
            SELECT sha256(p.URL) AS url_sha256, p.SAMPLE_ID,
                   coalesce((SELECT min(w.reason) FROM why w WHERE w.sample_id = p.SAMPLE_ID), 'not_in_build') AS reason
            FROM prev p WHERE p.SAMPLE_ID NOT IN (SELECT id FROM cur)
            ORDER BY reason, url_sha256
        """).to_arrow_table()


# Removal kinds whose entries come as hash lists (child-protection bodies, NCMEC/IWF-style lists):
# their diffs hide which rows a list flagged, as Re-LAION did.
HASH_KINDS = frozenset({"url_md5", "url_sha1", "url_sha256", "image_md5", "image_sha1", "image_sha256", "pdq"})
DIFF_MODES = ("by_source", "no_source", "padded")


def default_diff_modes(kinds_by_source: dict[str, dict[str, int]]) -> dict[str, str]:
    """`padded` for a source whose entries are all hashes, `by_source` for URL/domain/prefix requests."""
    return {s: "padded" if kinds and set(kinds) <= HASH_KINDS else "by_source" for s, kinds in kinds_by_source.items()}


def protect_diff(diff: pa.Table, modes: dict[str, str], unchanged: pa.Table, *, pad: int, salt: str) -> pa.Table:
    """The published diff: `removal:<source>` kept for `by_source` sources, plain `removal` for the
    others, and for `padded` sources each removed row hidden among `pad` rows still in the release
    (`unchanged`: SAMPLE_ID, URL), listed with the same reason `removal`. Padding rows are chosen by a
    keyed hash of the SAMPLE_ID (`salt`: the new version), so they are the same on every rebuild and
    cannot be told from flagged ones without the new version at hand."""
    bad = sorted(set(modes.values()) - set(DIFF_MODES))
    if bad:
        raise ValueError(f"diff mode {bad[0]!r}: one of {', '.join(DIFF_MODES)}")
    with duckdb.connect(":memory:") as con:
        con.register("diff", diff)
        con.register("modes", pa.table({"source": list(modes), "mode": list(modes.values())}, schema=pa.schema(
            [("source", pa.string()), ("mode", pa.string())])))
        con.register("unchanged", unchanged.select(["SAMPLE_ID", "URL"]))
        padded_rows = con.sql("""SELECT count(*) FROM diff d JOIN modes m
                                 ON d.reason = 'removal:' || m.source WHERE m.mode = 'padded'""").fetchall()[0][0]
        return con.sql(f"""
            WITH relabelled AS (
                SELECT d.url_sha256, d.SAMPLE_ID,
                       CASE WHEN m.mode IN ('no_source', 'padded') THEN 'removal' ELSE d.reason END AS reason
                FROM diff d LEFT JOIN modes m ON d.reason = 'removal:' || m.source
            ), padding AS (
                SELECT sha256(URL) AS url_sha256, SAMPLE_ID, 'removal' AS reason FROM unchanged
                ORDER BY sha256('{salt}' || CAST(SAMPLE_ID AS VARCHAR)) LIMIT {int(pad) * int(padded_rows)}
            )
            SELECT * FROM (SELECT * FROM relabelled UNION ALL SELECT * FROM padding) ORDER BY reason, url_sha256
        """).to_arrow_table()
