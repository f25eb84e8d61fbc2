"""Incremental re-derive: after k new removal entries, read and rewrite only what they touch.

`publish_release` calls `rederive_incremental` first; it returns (None, why) and the full build
runs whenever the release could differ from a full build's in any other way (`state_problem`,
`promotion_problem`): no index, other inputs (a shard re-filtered, re-downloaded, added or
removed), other rules, writer, variants or part size, a version published since, a withdrawn
entry, a removed row with another copy the full build could publish instead, a part count that
would change. Otherwise, over the release index (`release_index.py`):
1. candidates from the sorted lookup files, reading only the row groups whose min/max may hold a
   key (`lookup`: hash kinds and exact URLs; `prefix_lookup`: a prefix's range of the canonical
   URLs; domains through the host file, then their hosts' keys); only PDQ entries scan a column of
   the index (its PDQ column: the banded join);
2. exact: the candidate rows, read from the index files holding one, are matched with the release check's own
   `removal.matches_sql(canonical=True)` (same canonical forms, same PDQ thresholds), one reason per
   row: `removal:` + the first matching source by name, as dbt's `release_drops`;
3. per variant, only the parts holding a removed row are read and rewritten through the full
   build's writer (`writer.write_part`); the others are linked into the new version (names and
   bytes kept). Manifest, card, diff, checks (on the rewritten parts), holds, withdrawal and purge
   follow as in the full build, and the index drops the removed rows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from laion_assets.core.removal.requests import card_requests
from laion_assets.core.release.files import ReleaseVariant, removal_sources
from laion_assets.core.release.release_index import (
    FORMAT, KEYS, RULES, _entry_keys, bucket_of, inputs_fingerprint, key_sql,
)
from laion_assets.core.release.writer import PART_WRITER, part_of
from laion_assets.core.removal.entries import matches_sql, pdq_matches_sql
from laion_assets.core.checks import quote_literal
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import variant_latest

_INLINE_MAX = 1000  # up to this many keys per kind are inlined (the scan filters on them), more go by join


def state_problem(st: Storage, state: dict[str, Any] | None, variants: Sequence[ReleaseVariant],
                  rows_per_part: int) -> str | None:
    """Why the last publish's index cannot stand for a full build now (None: it can, as far as
    anything but the removal list goes)."""
    if state is None:
        return "no release index (first publish, or the last one was a full build without one)"
    if state.get("format") != FORMAT:
        return "the release index has another format"
    if state["rules"] != RULES:
        return "the release rules (placeholder, PDQ thresholds) changed"
    if state["writer"] != json.loads(json.dumps(PART_WRITER)):
        return "the part writer changed"
    if state["rows_per_part"] != rows_per_part:
        return "rows_per_part changed"
    if state.get("order") != [v.name for v in variants] or any(
            state["variants"][v.name]["punsafe_max"] != v.punsafe_max for v in variants):
        return "the release variants changed"
    dedup = [v.name for v in variants if getattr(v, "semdedup_min_cosine", None) is not None]
    if dedup:  # a removed row can be the kept one of a semantic cluster: its duplicates come back
        return f"semantic dedup is on for {', '.join(dedup)} (its clusters are re-derived from the whole release)"
    for v in variants:
        latest = variant_latest(v.name)
        if not st.exists(latest) or st.read_bytes(latest).decode().strip() != state["variants"][v.name]["version"]:
            return f"variant {v.name} was published since the release index was written"
    now = inputs_fingerprint(st)
    if not now:
        return "no shard table under the storage root (the warehouse was built from elsewhere)"
    if now != state["inputs"]:
        return "the shard tables changed since the last publish (a crawl added, a shard re-filtered or re-downloaded)"
    return None


def new_entries(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any],
                entries: pa.Table) -> tuple[pa.Table | None, str | None]:
    """The entries added since the state's publish, or (None, why) when entries were withdrawn."""
    con.register("cur_entries", _entry_keys(entries))
    con.register("prev_entries", st.read_parquet(state["entries"]))
    gone = con.sql("SELECT count(*) FROM (SELECT * FROM prev_entries EXCEPT SELECT * FROM cur_entries)").fetchall()[0][0]
    if gone:
        return None, f"{gone} removal entries were withdrawn since the last publish (their rows may come back)"
    added = con.sql("SELECT * FROM cur_entries EXCEPT SELECT * FROM prev_entries ORDER BY ALL").to_arrow_table()
    if not state["purged"] and added.num_rows:
        old = [s for s, v in state["facts"]["removal"]["sources"].items() if v["rows_removed"]]
        if old and min(added.column("source").to_pylist()) < max(old):
            return None, "the last publish did not purge, and a new source could take over rows removed before"
    return added, None


def _keys(con: duckdb.DuckDBPyConnection) -> dict[str, list[int]]:
    """The candidate keys of the new entries, per index key column."""
    exprs = {k: key_sql("value") for k in KEYS}
    exprs["url"] = key_sql("md5(value)")
    out: dict[str, list[int]] = {}
    for kind, (col, _) in KEYS.items():
        if kind == "url_prefix":
            continue  # a range of the sorted URL files (`prefix_lookup`), not its host's every row
        keys = [r[0] for r in con.sql(f"SELECT DISTINCT {exprs[kind]} FROM new_entries WHERE kind = '{kind}' "
                                      "ORDER BY 1").fetchall() if r[0] is not None]
        if keys:
            out.setdefault(col, []).extend(keys)
    return out


def _in(col: str, keys: list[int]) -> str:
    return f"{col} IN ({', '.join(map(str, keys))})"


def lookup(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any], col: str, keys: list[int]) -> set[int]:
    """SAMPLE_IDs whose `col` key is one of `keys`, from the key files (sorted by key, small row
    groups: DuckDB skips every row group whose min/max holds none of them, so k keys read at most
    k row groups of the bucket files that hold one, whatever the release's size)."""
    files = state["keys"][col]
    out: set[int] = set()
    by_file: dict[str, list[int]] = {}
    for k in sorted(set(keys)):
        by_file.setdefault(files[bucket_of(k, len(files))], []).append(k)
    for f, ks in sorted(by_file.items()):
        if len(ks) <= _INLINE_MAX:
            q = f"SELECT DISTINCT SAMPLE_ID FROM read_parquet('{st.uri(f)}') WHERE {_in('k', ks)}"
        else:  # a long hash list: one join over the bucket file
            q = (f"SELECT DISTINCT SAMPLE_ID FROM read_parquet('{st.uri(f)}') "
                 f"WHERE k IN (SELECT unnest({ks!r}::BIGINT[]))")
        out.update(r[0] for r in con.sql(q).fetchall())
    return out


def _next_prefix(p: str) -> str | None:
    """The smallest string above every string starting with `p` (None: none that is simple to spell)."""
    if p and p[-1] < "\x7f":
        return p[:-1] + chr(ord(p[-1]) + 1)
    return None


def prefix_lookup(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any], prefixes: list[str]) -> set[int]:
    """SAMPLE_IDs whose canonical URL starts with one of `prefixes`, from the sorted URL files: a
    range filter, so DuckDB reads only the row groups whose min/max overlap the prefix's range."""
    files = [st.uri(f) for f in state["keys"]["urls"]]
    out: set[int] = set()
    for p in sorted(set(prefixes)):
        hi = _next_prefix(p)
        bound = f" AND u < {quote_literal(hi)}" if hi is not None else ""
        out.update(r[0] for r in con.sql(
            f"SELECT SAMPLE_ID FROM read_parquet({files!r}) WHERE u >= {quote_literal(p)}{bound} "
            f"AND starts_with(u, {quote_literal(p)})").fetchall())
    return out


def index_rows(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any], ids: set[int] | list[int],
               name: str) -> list[str]:
    """Temp table `name`: the index rows of `ids` (with `filename`), read from the files whose
    SAMPLE_ID range holds one; returns those files."""
    files = state["index_files"]
    read = sorted({files[part_of(i, len(files))] for i in ids})
    con.register(f"{name}_ids", pa.table({"SAMPLE_ID": pa.array(sorted(ids), pa.int64())}))
    src = (f"read_parquet({[st.uri(f) for f in read]!r}, filename = true)" if read else  # no row: one footer
           f"(SELECT *, NULL::VARCHAR AS filename FROM read_parquet('{st.uri(files[0])}') LIMIT 0)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT row_number() OVER () AS rid, * FROM {src} "
                f"WHERE SAMPLE_ID IN (SELECT SAMPLE_ID FROM {name}_ids)")
    return read


def match(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any]) -> tuple[pa.Table, list[str]]:
    """Index rows the view `new_entries` removes (index columns, `reason`, `file`), and the index
    files that hold a candidate. Candidates come from the key files (hash kinds, exact URLs,
    prefixes through their host; domains through the host file, then their hosts' keys), reading
    only the row groups that may hold a key; PDQ entries scan the index's PDQ column (the banded
    join). Then only the candidate rows of the files holding one are matched exactly."""
    kinds = {r[0] for r in con.sql("SELECT DISTINCT kind FROM new_entries").fetchall()}
    unknown = kinds - set(KEYS) - {"domain", "pdq"}
    if unknown:
        raise ValueError(f"removal entry kinds the release index cannot match: {sorted(unknown)}")
    keys = _keys(con)
    if "domain" in kinds:
        hosts = con.sql(
            f"SELECT DISTINCT {key_sql('md5(h.host)')} FROM read_parquet('{st.uri(state['hosts'])}') h JOIN new_entries e "
            "ON e.kind = 'domain' AND (h.host = e.value OR ends_with(h.host, '.' || e.value))").fetchall()
        keys.setdefault("k_host", []).extend(r[0] for r in hosts)
    ids: set[int] = set()
    for col, ks in keys.items():
        ids |= lookup(con, st, state, col, ks)
    if "url_prefix" in kinds:
        ids |= prefix_lookup(con, st, state, [r[0] for r in con.sql(
            "SELECT DISTINCT value FROM new_entries WHERE kind = 'url_prefix' AND value IS NOT NULL").fetchall()])
    if "pdq" in kinds:  # the one kind that scans the index (its PDQ column, banded)
        uris = [st.uri(f) for f in state["index_files"]]
        con.execute(f"CREATE OR REPLACE TEMP VIEW idx AS SELECT * FROM read_parquet({uris!r})")
        ids |= {r[0] for r in con.sql(
            f"SELECT DISTINCT SAMPLE_ID FROM ({pdq_matches_sql('idx', 'new_entries', ['SAMPLE_ID'])})").fetchall()}
    # Only the candidates are matched exactly (a superset of the matches), read from the files holding them.
    by_uri = {st.uri(f): f for f in index_rows(con, st, state, ids, "cand")}
    # The files that hold a candidate row (a stale key, of a row removed since the full build, finds none).
    read = sorted(by_uri[r[0]] for r in con.sql("SELECT DISTINCT filename FROM cand").fetchall())
    if not read:
        return con.sql("SELECT * EXCLUDE (rid, filename), NULL::VARCHAR AS reason, NULL::VARCHAR AS file FROM cand"
                       ).to_arrow_table(), []
    con.execute("CREATE OR REPLACE TEMP VIEW cand_rows AS SELECT rid AS SAMPLE_ID, URL, sha256, md5, sha1, pdq, "
                "pdq_quality, url_canonical AS URL_CANONICAL, host_canonical AS HOST_CANONICAL FROM cand")
    removed = con.sql(f"""
        SELECT c.* EXCLUDE (rid, filename), 'removal:' || m.source AS reason, c.filename AS file
        FROM cand c JOIN (SELECT SAMPLE_ID AS rid, min(source) AS source
                          FROM ({matches_sql('cand_rows', 'new_entries', canonical=True)}) GROUP BY 1) m USING (rid)
        ORDER BY c.SAMPLE_ID, c.crawl, c.shard, c.key""").to_arrow_table()
    removed = removed.set_column(removed.schema.get_field_index("file"), "file",
                                 pa.array([by_uri[u] for u in removed.column("file").to_pylist()], pa.string()))
    return removed, read


def promotion_problem(con: duckdb.DuckDBPyConnection, st: Storage, state: dict[str, Any], removed: pa.Table) -> str | None:
    """Why the full build could publish a row the index path would not (None: it cannot): a removed
    placeholder-image drop (its image's URL count falls), a removed published row whose SAMPLE_ID the drop log names too (another copy of the pair, which a full
    build could publish instead, or whose drop reason the diff would name), or whose image another
    kept pair still has (a duplicate_image copy the full build would promote)."""
    con.register("removed", removed)
    # A placeholder image's pairs are dropped because its image stands behind many URLs; the purge
    # takes the removed row's download out of that count, and a full build may find it no
    # placeholder any more and publish its other pairs.
    placeholders = con.sql("SELECT count(*) FROM removed WHERE drop_reason = 'placeholder_image'").fetchall()[0][0]
    if placeholders:
        return f"{placeholders} removed row(s) were placeholder-image drops (the purge changes that image's URL count)"
    ids = [r[0] for r in con.sql("SELECT DISTINCT SAMPLE_ID FROM removed WHERE drop_reason IS NULL").fetchall()]
    if not ids:
        return None
    # shared.parquet is sorted by sample_id: an inlined list skips the row groups that hold none of them
    cond = (_in("sample_id", ids) if len(ids) <= _INLINE_MAX else
            "sample_id IN (SELECT SAMPLE_ID FROM removed WHERE drop_reason IS NULL)")
    shared = con.sql(f"SELECT count(*) FROM read_parquet('{st.uri(state['shared'])}') WHERE {cond}").fetchall()[0][0]
    if shared:
        return f"{shared} removed row(s) have another copy in the drop log"
    keys = [r[0] for r in con.sql(f"SELECT DISTINCT {key_sql('sha256')} FROM removed WHERE drop_reason IS NULL "
                                  "AND sha256 IS NOT NULL").fetchall()]
    if keys:
        index_rows(con, st, state, lookup(con, st, state, "k_image_sha256", keys), "same_image")
        copies = con.sql("""SELECT count(*) FROM same_image i
            WHERE i.sha256 IN (SELECT sha256 FROM removed WHERE drop_reason IS NULL)
              AND NOT EXISTS (SELECT 1 FROM removed r WHERE r.crawl = i.crawl AND r.shard = i.shard AND r.key = i.key)
            """).fetchall()[0][0]
        if copies:
            return f"{copies} kept pair(s) share an image with a removed row (a full build could publish one)"
    return None


def updated_facts(facts: dict[str, Any], removed: pa.Table, entries: pa.Table,
                  requests: Sequence[dict] = ()) -> dict[str, Any]:
    """The build facts a full build would give: drop counts move to the removal reasons, the
    funnel's dedup counts follow (stats_funnel), the removal sources are recounted."""
    out = json.loads(json.dumps(facts))
    drops = Counter(out["drops"])
    n_pub = n_dup = 0
    for old, new in zip(removed.column("drop_reason").to_pylist(), removed.column("reason").to_pylist()):
        if old is None:
            n_pub += 1
        else:
            drops[old] -= 1
            n_dup += old in ("duplicate", "duplicate_image")
        drops[new] += 1
    out["drops"] = {r: n for r, n in sorted(drops.items()) if n}
    stats = out["pipeline_stats"]
    for key, delta in (("pairs_before_dedup", n_pub + n_dup), ("pairs_deduplicated", n_pub), ("duplicates_removed", n_dup)):
        if key in stats:
            stats[key] -= delta
    sources = removal_sources(entries, out["drops"])
    out["removal"] = {"sources": sources, "rows_removed": sum(s["rows_removed"] for s in sources.values()),
                      "requests": card_requests(requests, {s: v["rows_removed"] for s, v in sources.items()})}
    return out


def updated_described(described: dict[str, Any], gone: pa.Table) -> dict[str, Any]:
    """The variant's card counts without the `gone` rows (release columns), ordered as `describe` orders them."""
    out = json.loads(json.dumps(described))
    for key, col in (("rows_by_crawl", "crawl"), ("rows_by_language", "LANGUAGE"), ("punsafe_sources", "punsafe_source")):
        counts = Counter(out[key])
        counts.subtract("unknown" if v is None else str(v) for v in gone.column(col).to_pylist())
        out[key] = dict(sorted(((k, n) for k, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0])))
    out["rows_with_license"] -= gone.num_rows - gone.column("LICENSE").null_count
    lost = Counter((r["model_id"], r["weights_id"], r["LANGUAGE"], None if r["threshold"] is None else round(float(r["threshold"]), 4))
                   for r in gone.select(["model_id", "weights_id", "LANGUAGE", "threshold"]).to_pylist())
    kept = []
    for m in out["thresholds"]:
        m["rows"] -= lost.get((m["model_id"], m["weights_id"], m["language"], m["threshold"]), 0)
        if m["rows"]:
            kept.append(m)
    out["thresholds"] = kept
    return out
