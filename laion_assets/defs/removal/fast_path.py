"""Which job re-derives the releases after a removal request: `takedown_job` (no dbt) or `publish_job`.

A removal changes the dbt models downstream of `stg_removal_entries` (removal_matches -> release_drops
-> published_pairs, drop_log, dedup_stats, the stats), which is every model the release reads; what
it cannot change is what the release index (`core/release/release_index.py`) was derived from. So the
removal-only path builds no dbt model at all: `takedown_job` runs `removal_list`, then
`published_dataset` by the incremental path (it reads the release index and the new entries, never
the warehouse), the search index and the receipts. It is chosen only when nothing but the removal
entries changed since the release index was written (`fast_path_problem`):
- a release index exists and `incremental.state_problem` has nothing against it (same shard tables
  by their parquet footers, rules, part writer, variants, part size, no version published since);
- the index was derived from the dbt project as it is now (`dbt.project.project_digest`).
Anything else (a shard re-run, a dbt model or rule edited, a variant added) takes `publish_job`, and
the caller says why. Inside `takedown_job` the incremental path can still decline (a withdrawn entry,
a removed row with another copy, a part count that would change, nothing published removed): the
asset then refuses the full build on a warehouse that predates the removal list (`warehouse_behind`)
and fails with `FullBuildNeeded`, tagging its run `FULL_BUILD_TAG`; `takedown rederive` then runs
`publish_job` at once, the sensor on its next tick, and `failure_alerts` does not alert that run.

The warehouse's removal models stay as they were until the next `publish_job` (or publish
automation, which sees `removal_list` updated and rebuilds them); nothing offered waits for them.
Receipts count `rows_matched` from the warehouse only when it was built on the current removal list
(else null until it is).
"""

from __future__ import annotations

import dagster as dg

from laion_assets.core.storage.base import Storage

TAKEDOWN_JOB = "takedown_job"
PUBLISH_JOB = "publish_job"
# Set on a takedown_job run whose release step declined the incremental path (the fallback runs publish_job).
FULL_BUILD_TAG = "laion-assets/full-build-needed"
# The dbt models `published_dataset` reads (its deps); `removal_matches` is what receipts read.
RELEASE_MODELS = ("drop_log", "published_pairs", "dedup_stats", "stats_funnel")
REMOVAL_LIST = dg.AssetKey("removal_list")


def derived_from() -> dict[str, str]:
    """What a full build's warehouse is built from besides the shards and the removal list."""
    from laion_assets.defs.dbt.project import project_digest

    return {"dbt_project": project_digest()}


def fast_path_problem(st: Storage) -> str | None:
    """Why the removal-only `takedown_job` cannot stand for `publish_job` now (None: it can)."""
    from laion_assets.core.release.files import ReleaseVariant
    from laion_assets.core.release.incremental import state_problem
    from laion_assets.core.release.publish import derived_problem
    from laion_assets.core.release.release_index import _read_state

    state = _read_state(st)
    if state is None:
        return "no release index (first publish, or the last one was a full build without one)"
    # The variants and part size as the index recorded them: `published_dataset` checks the
    # configured ones again (another set declines the incremental path, and publish_job follows).
    try:
        variants = [ReleaseVariant(n, state["variants"][n]["punsafe_max"]) for n in state["order"]]
        why = state_problem(st, state, variants, state["rows_per_part"])
    except (KeyError, TypeError) as e:
        return f"the release index cannot be read ({type(e).__name__}: {e})"
    return why or derived_problem(st, derived_from())


def choose_job(st: Storage) -> tuple[str, str]:
    """(job name, why): `takedown_job` when only removal entries changed, else `publish_job`."""
    why = fast_path_problem(st)
    if why is None:
        return TAKEDOWN_JOB, "only removal entries changed since the release index was written"
    return PUBLISH_JOB, why


def _fingerprint(event) -> str | None:
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    value = meta.get("fingerprint")
    return None if value is None else getattr(value, "value", value)


def warehouse_behind(instance: dg.DagsterInstance, models: tuple[str, ...] = RELEASE_MODELS) -> str | None:
    """Why the warehouse's `models` were not built on the current removal list (None: they were, or
    no removal list was ever built). The list a model was built on: the newest `removal_list`
    materialization before the model's own; the same entries (its `fingerprint`) count as current."""
    records = instance.fetch_materializations(REMOVAL_LIST, limit=1).records
    if not records:
        return None
    latest = records[0]
    now = _fingerprint(latest.event_log_entry)
    for name in models:
        model = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        if not model:
            return f"the warehouse model {name} was never built"
        if model[0].storage_id > latest.storage_id:
            continue
        before = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=REMOVAL_LIST, before_storage_id=model[0].storage_id), limit=1).records
        if not before or now is None or _fingerprint(before[0].event_log_entry) != now:
            return f"the warehouse model {name} predates the removal list"
    return None
