"""Publish a release: plan every variant (rows, checks, parts, version, row-count verdict), then
commit them, or nothing when any variant fails a check.

`publish_release` is what the `published_dataset` asset runs. Layout (core/storage/layout.py):
`releases/<variant>/<version>/` (parts, README.md, manifest.json; write-once), the variant's `LATEST`,
its `diffs/<old>__<new>.parquet` (+ .json), and `releases/LATEST` naming `<variant>/<version>` of the
first (default) variant.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laion_assets.core.checks import CheckOutcome, SqlCheck
from laion_assets.core.removal.guards import flag_entries
from laion_assets.core.removal.requests import read_requests_index
from laion_assets.core.release.checks import (
    CHECKS,
    LossLimits,
    RowCountVerdict,
    loss_holds,
    lost_by_reason,
    row_count_verdict,
)
from laion_assets.core.release.diff import default_diff_modes, protect_diff, release_diff
from laion_assets.core.release.files import ReleaseVariant, build_facts, verify_release_dir, write_release_files
from laion_assets.core.release.purge import purge_released_removals
from laion_assets.core.release.release_index import IndexLayout
from laion_assets.core.release.semantic import SemanticDrops, semantic_duplicates
from laion_assets.core.release.withdraw import withdraw_versions
from laion_assets.core.release.writer import ReleaseRows, part_bounds, release_version
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import (
    RELEASES_LATEST,
    REMOVAL_ENTRIES,
    WAREHOUSE,
    diff_path,
    release_dir,
    variant_latest,
)

_REASONS = pa.schema([("sample_id", pa.int64()), ("reason", pa.string())])


class FullBuildNeeded(Exception):
    """The incremental re-derive declined (`why`) and the full build may not run here (`refused`:
    the warehouse predates the removal list): run `publish_job`, which rebuilds the dbt models first."""

    def __init__(self, why: str, refused: str):
        self.why, self.refused = why, refused
        super().__init__(f"the full build is needed ({why}), and {refused}: run publish_job")


def derived_problem(st: Storage, derived_from: dict[str, str]) -> str | None:
    """Why the release index was not derived from `derived_from` (None: it was, or there is no index)."""
    from laion_assets.core.release.release_index import _read_state

    state = _read_state(st)
    if state is None:
        return None
    recorded = state.get("derived_from", {})
    changed = sorted(k for k in {*derived_from, *recorded} if derived_from.get(k) != recorded.get(k))
    if changed:
        return (f"the release index was derived from another {', '.join(changed)} "
                f"({', '.join(f'{k}: {recorded.get(k)} then, {derived_from.get(k)} now' for k in changed)})")
    return None


class ReleaseBlocked(Exception):
    """A check failed: nothing was published. `failures` names each variant and check."""

    def __init__(self, failures: Sequence[str]):
        self.failures = list(failures)
        super().__init__("release not published: " + "; ".join(self.failures))


@dataclass
class VariantPlan:
    """One variant, built and checked in a scratch directory, not yet published."""

    variant: ReleaseVariant
    files: list[dict[str, Any]]
    version: str
    ids: pa.Array
    nsfw: pa.Table  # (sample_id, reason) the variant's NSFW policy drops
    previous: str | None
    prev_table: pa.Table | None  # the previous version's SAMPLE_ID, URL (None: first or same version)
    verdict: RowCountVerdict
    described: dict[str, Any]
    outcomes: list[CheckOutcome]
    lost: dict[str, int] = field(default_factory=dict)  # previous rows gone, by reason
    holds: list[str] = field(default_factory=list)  # loss guards that hold this publish
    unchanged: pa.Table | None = None  # (SAMPLE_ID, URL) in both versions: padding for protective diffs
    semantic: SemanticDrops | None = None  # the variant's semantic duplicates (semdedup on)

    def variant_reasons(self) -> pa.Table:
        """(sample_id, reason) this variant drops on top of the build's drop log: NSFW policy, semantic dedup."""
        tables = [self.nsfw.select(["sample_id", "reason"]).cast(_REASONS)]
        if self.semantic is not None:
            tables.append(self.semantic.reasons.cast(_REASONS))
        return pa.concat_tables(tables)

    @property
    def failures(self) -> list[str]:
        out = [f"{self.variant.name}: {o.name} ({o.failing_rows} rows)" for o in self.outcomes if not o.passed]
        if not self.verdict.passed:
            out.append(f"{self.variant.name}: row count: {self.verdict.message}")
        out += [f"{self.variant.name}: held: {h}" for h in self.holds]
        return out


@dataclass(frozen=True)
class PublishOptions:
    """What a publish may do: part size, the row-count gate and loss guards, diff protection."""

    rows_per_part: int = 1_000_000
    max_unexplained_drop_fraction: float = 0.05
    limits: LossLimits = LossLimits()
    diff_modes: dict[str, str] = field(default_factory=dict)  # per removal source; default: default_diff_modes
    diff_pad: int = 9  # unchanged rows listed beside each removed row of a `padded` source
    withdraw: bool = True
    incremental: bool = True  # re-derive from the release index when only removal entries grew (incremental.py)
    # What the warehouse was built from besides the shard tables and the removal list (e.g. the dbt
    # project's digest): a full build records it in the release index, an incremental re-derive
    # needs the same (else the full build runs).
    derived_from: dict[str, str] = field(default_factory=dict)
    # Set when the warehouse predates the removal list (a `takedown_job` run, which builds no dbt
    # model): the full build would read stale drops, so it is refused (`FullBuildNeeded`) instead.
    full_build_refused: str | None = None
    # How the release index's lookup files are cut (release_index.IndexLayout); tests cut them small.
    index_layout: IndexLayout = field(default_factory=IndexLayout)


@dataclass
class PublishResult:
    variants: dict[str, dict[str, Any]]  # per variant: version, rows, previous, row_check, diff
    default_variant: str
    outcomes: list[CheckOutcome]  # the default variant's release checks (on exactly the published rows)
    card_problems: list[str]  # verify_release_dir of the default variant's staged files
    facts: dict[str, Any] = field(default_factory=dict)
    purged: dict[str, Any] = field(default_factory=dict)  # per shard: what purge_removed deleted
    mode: str = "full"  # or "incremental" (core/release/incremental.py)
    mode_reason: str = ""  # why the full build ran (or what the incremental re-derive read and rewrote)

    @property
    def version(self) -> str:
        return self.variants[self.default_variant]["version"]


def latest_version(st: Storage, variant: str) -> str | None:
    relpath = variant_latest(variant)
    return st.read_bytes(relpath).decode().strip() if st.exists(relpath) else None


def read_release(st: Storage, variant: str, version: str, columns: list[str] | None = None) -> pa.Table:
    """Every part of `releases/<variant>/<version>` as one table (local or S3)."""
    parts = [p for p in st.list(release_dir(variant, version), ".parquet")
             if p.rsplit("/", 1)[-1].startswith("part-")]
    table = st.read_parquet_many(parts)
    return table.select(columns) if columns else table


def previous_part_count(st: Storage, variant: str, version: str | None) -> int | None:
    manifest = f"{release_dir(variant, version)}/manifest.json" if version else None
    return len(json.loads(st.read_bytes(manifest))["files"]) if manifest and st.exists(manifest) else None


def rows_of_changed_parts(table: pa.Table, st: Storage, variant: str, previous: str | None,
                          files: Sequence[dict[str, Any]]) -> pa.Table:
    """The rows of `table` (SAMPLE_ID, ...) in the parts that differ from the previous version's
    (all of them when the part count changed): a padded diff hides removed rows among these, which
    an incremental re-derive has at hand without reading the untouched parts."""
    manifest = f"{release_dir(variant, previous)}/manifest.json" if previous else None
    if not manifest or not st.exists(manifest):
        return table
    old = json.loads(st.read_bytes(manifest))["files"]
    if len(old) != len(files):
        return table
    changed = [i for i, (a, b) in enumerate(zip(old, files)) if (a["path"], a["sha256"]) != (b["path"], b["sha256"])]
    bounds = part_bounds(len(files))
    ids = table.column("SAMPLE_ID")
    keep = pa.array([False] * table.num_rows)
    for i in changed:
        inside = pc.greater_equal(ids, pa.scalar(bounds[i], pa.int64()))
        if i + 1 < len(files):  # the last part runs to 2^63, past int64
            inside = pc.and_(inside, pc.less(ids, pa.scalar(bounds[i + 1], pa.int64())))
        keep = pc.or_(keep, inside)
    return table.filter(keep)


def plan_variant(st: Storage, rows: ReleaseRows, variant: ReleaseVariant, entries: pa.Table,
                 reasons_release: pa.Table, out_dir: Path, options: PublishOptions,
                 checks: Sequence[SqlCheck] = CHECKS) -> VariantPlan:
    semantic = None
    if variant.semdedup_min_cosine is not None:  # the variant's rows are the build's minus its duplicates
        semantic = semantic_duplicates(st, rows, variant)
        rows = rows.without(variant.name, semantic.table.column("sample_id"))
    outcomes = rows.check(variant.punsafe_max, checks, entries)
    previous = latest_version(st, variant.name)
    files = rows.write_parts(variant.punsafe_max, out_dir, options.rows_per_part,
                             previous_part_count(st, variant.name, previous))
    version = release_version(variant.name, files)
    ids, nsfw = rows.sample_ids(variant.punsafe_max), rows.policy_drops(variant.punsafe_max)
    prev_table = (read_release(st, variant.name, previous, ["SAMPLE_ID", "URL"])
                  if previous and previous != version else None)
    reasons = pa.concat_tables([reasons_release.cast(_REASONS), nsfw.select(["sample_id", "reason"]).cast(_REASONS),
                                *([semantic.reasons.cast(_REASONS)] if semantic is not None else [])])
    prev_ids = None if prev_table is None else prev_table.column("SAMPLE_ID").combine_chunks()
    verdict = row_count_verdict(prev_ids, ids, reasons.column("sample_id").combine_chunks(),
                                max_unexplained_drop_fraction=options.max_unexplained_drop_fraction)
    lost, holds, unchanged = {}, [], None
    if previous == version:
        verdict = dataclasses.replace(verdict, previous_rows=len(ids), message="same version rebuilt")
    elif prev_ids is not None:
        lost = lost_by_reason(prev_ids, ids, reasons)
        holds = loss_holds(lost, len(prev_ids), options.limits)
        unchanged = prev_table.filter(pc.is_in(prev_table.column("SAMPLE_ID"), value_set=ids))
        unchanged = rows_of_changed_parts(unchanged, st, variant.name, previous, files)
    return VariantPlan(variant, files, version, ids, nsfw, previous, prev_table, verdict,
                       rows.describe(variant.punsafe_max), outcomes, lost, holds, unchanged, semantic)


def commit_variant(st: Storage, plan: VariantPlan, facts: dict[str, Any], reasons_release: pa.Table,
                   staged: Path, options: PublishOptions = PublishOptions()) -> dict[str, Any]:
    """Commit one checked variant: its content-addressed directory, its diff, then its LATEST."""
    variant, version = plan.variant, plan.version
    build = variant_build(facts, plan.nsfw.num_rows, len(plan.ids))
    if plan.semantic is not None:
        build["funnel"]["dropped"] = dict(sorted({**build["funnel"]["dropped"],
                                                  "semantic_duplicate": plan.semantic.table.num_rows}.items()))
        build["semantic_dedup"] = plan.semantic.summary()
    # Content-addressed: written once, never replaced; the variant's LATEST is the commit.
    with st.write_once_dir(release_dir(variant.name, version)) as tmp:
        for f in plan.files:
            shutil.move(staged / f["path"], tmp / f["path"])
        write_release_files(tmp, files=plan.files, version=version, variant=variant, described=plan.described,
                            build=build)
        if plan.semantic is not None:
            plan.semantic.write(tmp)
        problems = verify_release_dir(tmp)
        if problems:
            raise ReleaseBlocked([f"{variant.name} {version}: {p}" for p in problems])
    diff_meta = None
    if plan.prev_table is not None:
        why = pa.concat_tables([reasons_release.cast(_REASONS), plan.variant_reasons()])
        full = release_diff(plan.prev_table, plan.ids, why)
        unchanged = plan.unchanged if plan.unchanged is not None else plan.prev_table.slice(0, 0)
        diff_meta = write_variant_diff(st, variant.name, plan.previous, version, full, unchanged, plan.verdict,
                                       facts, options)
    st.write_bytes(version.encode() + b"\n", variant_latest(variant.name))
    return {"version": version, "rows": len(plan.ids), "previous": plan.previous,
            "row_check": plan.verdict.message, "diff": diff_meta, "card_problems": problems}


def variant_build(facts: dict[str, Any], nsfw_rows: int, published_rows: int) -> dict[str, Any]:
    """The manifest's build facts of one variant: the build's facts, its funnel with its NSFW drops."""
    dropped = dict(facts["drops"])
    if nsfw_rows:
        dropped["nsfw_policy"] = nsfw_rows
    build = {k: v for k, v in facts.items() if k != "drops"}
    build["funnel"] = {"pairs_extracted": facts["pairs_extracted"], "dropped": dict(sorted(dropped.items()))}
    build["pipeline_stats"] = {**facts["pipeline_stats"], "pairs_published": published_rows}
    return build


def write_variant_diff(st: Storage, variant: str, previous: str, version: str, full: pa.Table, unchanged: pa.Table,
                       verdict: RowCountVerdict, facts: dict[str, Any], options: PublishOptions) -> dict[str, Any]:
    """`diffs/<previous>__<version>.parquet` (+ .json) from the full diff (url_sha256, SAMPLE_ID, reason),
    protected per source; `unchanged` (SAMPLE_ID, URL): the rows padded sources hide among."""
    sources = facts["removal"]["sources"]
    modes = {**default_diff_modes({s: v["kinds"] for s, v in sources.items()}), **options.diff_modes}
    diff = protect_diff(full, modes, unchanged, pad=options.diff_pad, salt=version)
    name = diff_path(variant, previous, version)
    # The summary counts what was really removed (the padded rows are listed, not removed).
    diff_meta = {"from": previous, "to": version, "rows_removed": full.num_rows, "rows_listed": diff.num_rows,
                 "rows_added": verdict.rows - (verdict.previous_rows - verdict.lost),
                 "modes": dict(sorted((s, m) for s, m in modes.items() if m != "by_source")),
                 "removed_by_reason": dict(sorted(Counter(
                     protect_diff(full, modes, unchanged.slice(0, 0), pad=0, salt=version).column("reason").to_pylist()
                 ).items()))}
    st.write_parquet(diff, f"{name}.parquet")
    st.write_bytes((json.dumps(diff_meta, indent=2, sort_keys=True) + "\n").encode(), f"{name}.json")
    return diff_meta


def broad_entry_holds(entries: pa.Table, facts: dict[str, Any], limits: LossLimits) -> list[str]:
    """Over-broad removal entries (a public suffix, an IP-like fragment, a host-less prefix:
    `core/removal/guards.py`) hold every publish until their source is confirmed, whatever they
    matched: the counts say what confirming would take out."""
    sources = facts["removal"]["sources"]
    held = [e for e in flag_entries(entries.select(["kind", "value", "source"]).to_pylist())
            if e["source"] not in limits.confirmed_sources]
    return [f"held: over-broad {e['kind']} entry of removal source {e['source']} ({e['reason']}); the source "
            f"removes {sources.get(e['source'], {}).get('rows_removed', 0)} rows; confirm it in confirm_removal_sources"
            for e in held]


def publish_release(st: Storage, variants: Sequence[ReleaseVariant], options: PublishOptions = PublishOptions(),
                    log: Callable[[str], None] = lambda _: None, extra_failures: Sequence[str] = ()) -> PublishResult:
    """Build every variant from the warehouse's `published_pairs`, check each, and publish all of
    them (then `releases/LATEST`), or raise `ReleaseBlocked` having published nothing.
    `extra_failures`: what else blocks this publish (e.g. a download outage), reported with the rest."""
    if not variants:
        raise ValueError("variants: at least one release variant is needed")
    # Only removal entries grew since the last publish: match them against the release index and
    # rewrite only the parts they touch (core/release/incremental.py decides, and says why not).
    why_full = "incremental re-derive off"
    if options.incremental:
        from laion_assets.core.release.incremental_commit import rederive_incremental

        why_full = derived_problem(st, options.derived_from)
        done = None
        if why_full is None:
            done, why_full = rederive_incremental(st, variants, options, log, extra_failures)
        if done is not None:
            return done
        if options.full_build_refused is None:
            log(f"full build: {why_full}")
    if options.full_build_refused is not None:
        raise FullBuildNeeded(why_full, options.full_build_refused)
    entries = st.read_parquet(REMOVAL_ENTRIES)
    scratch = Path(tempfile.mkdtemp(prefix="laion-release-"))
    index = None
    try:
        with ReleaseRows.from_warehouse(st.local_file(WAREHOUSE), register=st.register_duckdb,
                                        temp_dir=scratch / "spill") as rows:
            facts = build_facts(rows.con, entries, published=rows.count(), requests=read_requests_index(st))
            reasons_release = rows.con.sql("SELECT sample_id, reason FROM wh.drop_log").to_arrow_table()
            plans = [plan_variant(st, rows, v, entries, reasons_release, scratch / v.name, options) for v in variants]
            if options.incremental and not [f for p in plans for f in p.failures]:
                from laion_assets.core.release.release_index import build_index

                index = build_index(rows.con, scratch / "index", options.rows_per_part, options.index_layout)
        failures = [f for p in plans for f in p.failures] + list(extra_failures)
        failures += broad_entry_holds(entries, facts, options.limits)
        if failures:
            raise ReleaseBlocked(failures)
        published = {}
        for plan in plans:
            published[plan.variant.name] = commit_variant(st, plan, facts, reasons_release,
                                                          scratch / plan.variant.name, options)
            log(f"published {plan.variant.name} {plan.version}: {len(plan.ids)} rows ({plan.verdict.message})")
            if plan.semantic is not None:
                log(f"{plan.variant.name}: {plan.semantic.table.num_rows} semantic duplicates of "
                    f"{plan.semantic.rows_compared} rows (min cosine {plan.semantic.min_cosine}) in "
                    f"{plan.semantic.elapsed_s:.2f} s")
        removed = reasons_release.filter(pc.starts_with(reasons_release.column("reason"), "removal:"))
        for plan in plans:
            withdrawn = withdraw_versions(st, plan.variant.name, plan.version, removed) if options.withdraw else []
            published[plan.variant.name]["withdrawn"] = [w["version"] for w in withdrawn]
            for w in withdrawn:
                log(f"withdrew {plan.variant.name} {w['version']}: {w['rows_removed_by_reason']}")
        if index is not None:
            from laion_assets.core.release.release_index import upload_index

            index = upload_index(st, index)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    first = variants[0].name
    card_problems = {name: meta.pop("card_problems") for name, meta in published.items()}[first]
    st.write_bytes(f"{first}/{published[first]['version']}\n".encode(), RELEASES_LATEST)
    # Purge what the builder holds of removed rows (images, embeddings, score rows; the downloader
    # never fetches them again): only the shards the drop log names are touched.
    purged = purge_released_removals(st) if options.withdraw else {}
    if purged:
        log(f"purged removed samples from {len(purged)} shard(s)")
    if index is not None:  # what the next re-derive matches new entries against
        from laion_assets.core.release.release_index import save_full_state

        save_full_state(st, index, variants, published, facts, entries, purged, options)
    return PublishResult(published, first, plans[0].outcomes, card_problems, facts, purged, "full", why_full)
