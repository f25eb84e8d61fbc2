"""The incremental re-derive's plan and commit (`incremental.py` says when it runs and how it matches)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.core.removal.requests import read_requests_index
from laion_assets.core.checks import CheckOutcome
from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.release.checks import CHECKS, RowCountVerdict, loss_holds
from laion_assets.core.release.diff import release_diff
from laion_assets.core.release.files import ReleaseVariant, verify_release_dir, write_release_files
from laion_assets.core.release.incremental import (
    match, new_entries, promotion_problem, state_problem, updated_described, updated_facts,
)
from laion_assets.core.release.purge import purge_removed
from laion_assets.core.release.release_index import _after_purge, _commit_state, _read_state
from laion_assets.core.release.withdraw import withdraw_versions
from laion_assets.core.release.writer import ReleaseRows, part_count, part_of, release_version, write_part
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import RELEASE_INDEX_DIR, RELEASES_LATEST, REMOVAL_ENTRIES, release_dir, variant_latest

_HASHES = ["SAMPLE_ID", "md5", "sha1", "pdq", "pdq_quality", "url_canonical", "host_canonical"]


@dataclass
class IncrementalPlan:
    """One variant re-derived from its previous version: only `rewritten` parts are new files."""

    variant: ReleaseVariant
    previous: str
    manifest: dict[str, Any]
    files: list[dict[str, Any]]
    version: str
    rows: int
    gone: pa.Table  # the variant's removed rows (release columns)
    unchanged: pa.Table  # SAMPLE_ID, URL of the rewritten parts' remaining rows (diff padding)
    rewritten: list[int] = field(default_factory=list)
    reason_of: dict[int, str] = field(default_factory=dict)  # SAMPLE_ID -> removal:<source>
    outcomes: list[CheckOutcome] = field(default_factory=list)
    verdict: RowCountVerdict | None = None
    lost: dict[str, int] = field(default_factory=dict)
    holds: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = [f"{self.variant.name}: {o.name} ({o.failing_rows} rows)" for o in self.outcomes if not o.passed]
        if not self.verdict.passed:
            out.append(f"{self.variant.name}: row count: {self.verdict.message}")
        return out + [f"{self.variant.name}: held: {h}" for h in self.holds]


def _plan(st: Storage, variant: ReleaseVariant, state: dict[str, Any], removed_pub: pa.Table, reason_of: dict[int, str],
          cand: pa.Table, entries: pa.Table, staged: Path, options: Any) -> IncrementalPlan | str:
    previous = state["variants"][variant.name]["version"]
    manifest = json.loads(st.read_bytes(f"{release_dir(variant.name, previous)}/manifest.json"))
    n = len(manifest["files"])
    punsafe = removed_pub.column("punsafe")
    in_v = removed_pub.filter(pc.and_(pc.is_valid(punsafe), pc.less_equal(punsafe, variant.punsafe_max)))
    ids = in_v.column("SAMPLE_ID").combine_chunks()
    rows = manifest["rows"] - len(ids)
    if part_count(rows, options.rows_per_part, n) != n:
        return f"variant {variant.name}: the part count would change ({n} parts, {rows} rows)"
    touched = sorted({part_of(i, n) for i in ids.to_pylist()})
    staged.mkdir(parents=True, exist_ok=True)

    def rewrite(i: int) -> tuple[dict[str, Any], pa.Table, pa.Table]:
        name = manifest["files"][i]["path"]
        old = st.read_parquet(f"{release_dir(variant.name, previous)}/{name}")
        hit = pc.is_in(old.column("SAMPLE_ID"), value_set=ids)
        kept = old.filter(pc.invert(hit))
        return write_part(kept, staged / name), kept, old.filter(hit)

    with ThreadPoolExecutor(max_workers=max(1, min(len(touched), available_cpus()))) as pool:
        done = list(pool.map(rewrite, touched))
    files = [dict(f) for f in manifest["files"]]
    for i, (f, _, _) in zip(touched, done):
        files[i] = f
    kept = pa.concat_tables([k for _, k, _ in done]) if done else None
    gone = pa.concat_tables([g for _, _, g in done]) if done else None
    plan = IncrementalPlan(variant, previous, manifest, files, release_version(variant.name, files), rows,
                           gone, kept.select(["SAMPLE_ID", "URL"]) if kept is not None else None, touched, reason_of)
    if plan.version == previous:
        plan.verdict = RowCountVerdict(True, rows, rows, 0, 0, "same version rebuilt")
        return plan
    if rows == 0:
        plan.verdict = RowCountVerdict(False, manifest["rows"], 0, 0, 0, "release would be empty")
    else:
        share = 0 / max(manifest["rows"], 1)
        plan.verdict = RowCountVerdict(True, manifest["rows"], rows, len(ids), 0, (
            f"{len(ids)} of {manifest['rows']} previous rows gone, 0 not explained by the drop log "
            f"({share:.2%}; allowed {options.max_unexplained_drop_fraction:.2%})"))
    plan.lost = dict(sorted(Counter(reason_of[i] for i in ids.to_pylist()).items()))
    plan.holds = loss_holds(plan.lost, manifest["rows"], options.limits)
    # The release checks on every row this re-derive wrote (the untouched parts passed them when published).
    with_hashes = _with_hashes(kept, cand) if kept.num_rows else kept
    with ReleaseRows.from_table(with_hashes) as checked:
        plan.outcomes = checked.check(variant.punsafe_max, CHECKS, entries)
    return plan


def _with_hashes(kept: pa.Table, cand: pa.Table) -> pa.Table:
    """`kept` with the hash columns of its rows' index rows (a left join on SAMPLE_ID; `cand` is
    sorted by SAMPLE_ID, published SAMPLE_IDs are unique): a binary search and a take, in `kept`'s
    order (a join where the ids are not unique)."""
    hashes = cand.select(_HASHES)
    ids = hashes.column("SAMPLE_ID").to_numpy()
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        return kept.join(hashes, "SAMPLE_ID", join_type="left outer")
    want = kept.column("SAMPLE_ID").to_numpy()
    pos = np.minimum(np.searchsorted(ids, want), max(len(ids) - 1, 0))
    found = ids[pos] == want if len(ids) else np.zeros(len(want), bool)
    taken = hashes.take(pa.array(pos, pa.int64(), mask=~found))
    for name in _HASHES[1:]:
        kept = kept.append_column(name, taken.column(name))
    return kept


def rederive_incremental(st: Storage, variants: Sequence[ReleaseVariant], options: Any,
                         log: Callable[[str], None] = lambda _: None, extra_failures: Sequence[str] = ()) -> tuple[Any, str]:
    """Publish every variant by the incremental path, or (None, why the full build must run)."""
    from laion_assets.core.release.publish import (
        PublishResult, ReleaseBlocked, broad_entry_holds, variant_build, write_variant_diff,
    )

    t0 = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:  # wall seconds since the previous phase ended, in the summary
        phases[name] = time.perf_counter() - t0 - sum(phases.values())

    state = _read_state(st)
    why = state_problem(st, state, variants, options.rows_per_part)
    if why:
        return None, why
    phase("state")
    entries = st.read_parquet(REMOVAL_ENTRIES)
    scratch = Path(tempfile.mkdtemp(prefix="laion-rederive-"))
    try:
        with duckdb.connect(":memory:") as con:
            st.register_duckdb(con)
            con.execute(f"SET threads = {available_cpus()}")
            added, why = new_entries(con, st, state, entries)
            if why:
                return None, why
            con.register("new_entries", added)
            removed, read = match(con, st, state)
            why = promotion_problem(con, st, state, removed)
            if why:
                return None, why
            phase("match")
            # Hash columns of the published rows of the parts to be rewritten (for the checks), read
            # from the index files that cover those parts' SAMPLE_ID ranges.
            cover, ranges = _covering_files(state, removed, variants)
            within = " OR ".join(f"(SAMPLE_ID >= {lo} AND SAMPLE_ID < {hi})" for lo, hi in ranges) or "false"
            cand = (con.sql(f"SELECT {', '.join(_HASHES)} FROM read_parquet({[st.uri(f) for f in sorted(cover)]!r}) "
                            f"WHERE drop_reason IS NULL AND ({within}) ORDER BY SAMPLE_ID").to_arrow_table()
                    if cover else None)
        pub = removed.filter(pc.is_null(removed.column("drop_reason")))
        reason_of = dict(zip(pub.column("SAMPLE_ID").to_pylist(), pub.column("reason").to_pylist()))
        facts = updated_facts(state["facts"], removed, entries, read_requests_index(st))
        plans = []
        for v in variants:
            plan = _plan(st, v, state, pub, reason_of, cand, entries, scratch / v.name, options)
            if isinstance(plan, str):
                return None, plan
            plans.append(plan)
        phase("rewrite+checks")
        if plans[0].version == plans[0].previous:
            # The default variant (whose checks the asset reports) has nothing to rewrite, so nothing
            # here was checked: the full build re-checks its rows ("same version rebuilt").
            return None, f"no new removal entry removes a published row of {plans[0].variant.name}"
        failures = [f for p in plans for f in p.failures] + list(extra_failures)
        failures += broad_entry_holds(entries, facts, options.limits)
        if failures:
            raise ReleaseBlocked(failures)
        published, card_problems = {}, {}
        n_pub = pub.num_rows
        for plan in plans:
            published[plan.variant.name], card_problems[plan.variant.name] = _commit(
                st, plan, facts, n_pub, scratch / plan.variant.name, options, variant_build, write_variant_diff,
                ReleaseBlocked)
            log(f"published {plan.variant.name} {plan.version}: {plan.rows} rows ({plan.verdict.message}); "
                f"incremental: {len(plan.rewritten)} of {len(plan.files)} parts rewritten")
        reasons = pa.table({"sample_id": pub.column("SAMPLE_ID"), "reason": pub.column("reason")})
        for plan in plans:
            withdrawn = withdraw_versions(st, plan.variant.name, plan.version, reasons) if options.withdraw and n_pub else []
            published[plan.variant.name]["withdrawn"] = [w["version"] for w in withdrawn]
            for w in withdrawn:
                log(f"withdrew {plan.variant.name} {w['version']}: {w['rows_removed_by_reason']}")
        first = variants[0].name
        st.write_bytes(f"{first}/{published[first]['version']}\n".encode(), RELEASES_LATEST)
        phase("publish+withdraw")
        purged = {}
        if options.withdraw and removed.num_rows:
            purged = purge_removed(st, removed.select(["crawl", "shard", "key", "SAMPLE_ID", "reason"])
                                   .rename_columns(["crawl", "shard", "key", "sample_id", "reason"]))
            if purged:
                log(f"purged removed samples from {len(purged)} shard(s)")
        phase("purge")
        _update_index(st, state, removed, read, variants, published, facts, entries, purged, options, scratch)
        phase("index")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = (f"{added.num_rows} new removal entries matched {removed.num_rows} kept pairs ({n_pub} published); "
               f"candidates in {len(read)} of {len(state['index_files'])} index files; parts rewritten: "
               + ", ".join(f"{p.variant.name} {len(p.rewritten)} of {len(p.files)}" for p in plans)
               + f"; {time.perf_counter() - t0:.2f} s ("
               + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()) + ")")
    log(f"incremental re-derive: {summary}")
    for plan in plans:
        published[plan.variant.name]["incremental"] = {
            "parts_rewritten": [plan.files[i]["path"] for i in plan.rewritten],
            "rows_rewritten": sum(plan.files[i]["rows"] for i in plan.rewritten)}
    return PublishResult(published, first, plans[0].outcomes, card_problems[first], facts, purged,
                         "incremental", summary), summary


def _covering_files(state: dict[str, Any], removed: pa.Table, variants: Sequence[ReleaseVariant]
                    ) -> tuple[set[str], list[tuple[int, int]]]:
    """The index files whose SAMPLE_ID range overlaps a part a removed row will be rewritten in,
    and those parts' [lo, hi) SAMPLE_ID ranges."""
    from laion_assets.core.release.writer import part_bounds

    files, out, ranges = state["index_files"], set(), set()
    ids = [i for i, d in zip(removed.column("SAMPLE_ID").to_pylist(), removed.column("drop_reason").to_pylist()) if d is None]
    for v in variants:
        n = state["variants"][v.name].get("parts")
        if not n:
            continue
        bounds = part_bounds(n)
        for p in {part_of(i, n) for i in ids}:
            lo, hi = part_of(bounds[p], len(files)), part_of(bounds[p + 1] - 1, len(files))
            out.update(files[lo:hi + 1])
            ranges.add((bounds[p], bounds[p + 1]))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):  # overlapping or adjacent ranges as one
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return out, merged


def _commit(st: Storage, plan: IncrementalPlan, facts: dict[str, Any], n_pub: int, staged: Path, options: Any,
            variant_build, write_variant_diff, blocked) -> tuple[dict[str, Any], list[str]]:
    variant, version = plan.variant, plan.version
    if version == plan.previous:
        st.write_bytes(version.encode() + b"\n", variant_latest(variant.name))
        return {"version": version, "rows": plan.rows, "previous": plan.previous, "row_check": plan.verdict.message,
                "diff": None}, []
    nsfw = plan.manifest["funnel"]["dropped"].get("nsfw_policy", 0) - (n_pub - plan.gone.num_rows)
    build = variant_build(facts, nsfw, plan.rows)
    described = updated_described({k: plan.manifest[k] for k in ("rows_by_crawl", "rows_by_language", "thresholds",
                                                                  "punsafe_sources", "rows_with_license")}, plan.gone)
    linked = set()
    with st.write_once_dir(release_dir(variant.name, version)) as tmp:
        for i, f in enumerate(plan.files):
            if i in plan.rewritten:
                shutil.move(staged / f["path"], tmp / f["path"])
            else:
                st.link_into(f"{release_dir(variant.name, plan.previous)}/{f['path']}", tmp / f["path"])
                linked.add(f["path"])
        write_release_files(tmp, files=plan.files, version=version, variant=variant, described=described, build=build)
        problems = verify_release_dir(tmp, verified=frozenset(linked))
        if problems:
            raise blocked([f"{variant.name} {version}: {p}" for p in problems])
    ids = plan.gone.column("SAMPLE_ID").to_pylist()
    reasons = pa.table({"sample_id": pa.array(ids, pa.int64()),
                        "reason": pa.array([plan.reason_of[i] for i in ids], pa.string())})
    full = release_diff(plan.gone.select(["SAMPLE_ID", "URL"]), pa.array([], pa.int64()), reasons)
    diff_meta = write_variant_diff(st, variant.name, plan.previous, version, full, plan.unchanged, plan.verdict,
                                   facts, options)
    st.write_bytes(version.encode() + b"\n", variant_latest(variant.name))
    return {"version": version, "rows": plan.rows, "previous": plan.previous, "row_check": plan.verdict.message,
            "diff": diff_meta}, problems



def _update_index(st: Storage, state: dict[str, Any], removed: pa.Table, read: list[str],
                  variants: Sequence[ReleaseVariant], published: dict[str, Any], facts: dict[str, Any],
                  entries: pa.Table, purged: dict[str, Any], options: Any, scratch: Path) -> None:
    """The index without the removed rows (only the files that held one are rewritten), committed
    with the new versions and entries: the next re-derive starts from this one."""
    gen = f"{RELEASE_INDEX_DIR}/g-{uuid.uuid4().hex[:12]}"
    files = list(state["index_files"])
    gone = {(c, s, k) for c, s, k in zip(*(removed.column(x).to_pylist() for x in ("crawl", "shard", "key")))}
    holding = set(removed.column("file").to_pylist())
    for i, f in enumerate(files):
        if f not in holding:
            continue
        t = st.read_parquet(f)
        # Only rows sharing a removed SAMPLE_ID can be removed ones: compare their (crawl, shard, key).
        keep = pc.invert(pc.is_in(t.column("SAMPLE_ID"), value_set=removed.column("SAMPLE_ID"))).to_numpy(zero_copy_only=False)
        for j in (~keep).nonzero()[0].tolist():
            keep[j] = (t.column("crawl")[j].as_py(), t.column("shard")[j].as_py(), t.column("key")[j].as_py()) not in gone
        local = scratch / "index" / f.rsplit("/", 1)[-1]
        local.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t.filter(keep), local, compression="zstd")
        files[i] = f"{gen}/{local.name}"
        st.upload_file(local, files[i])
    # The key and host files stay as they are: the removed rows' keys find no row any more (a superset).
    _commit_state(st, gen, files, state["shared"], variants, {n: m["version"] for n, m in published.items()},
                  _after_purge(facts, purged), entries, options.withdraw, options, keys=state["keys"],
                  hosts=state["hosts"])
