"""The publish gate over every registered shard, evaluated once per dep asset and tick, with nothing
per partition kept in the sensor's cursor.

Why not Dagster's own `eager() & ~any_deps_match(...)` over the shard deps: each of its dep nodes
keeps a subset of the `shards` partitions and the tick serializes every one of them into the
cursor and the evaluation records (~280 subsets per tick for the publish group, each walking all
registered keys): the cost grew linearly with the partitions and dominated the tick
(docs/scaling.md, `bench/instance_scale.py`). Here the shard deps are `ignore`d by the eager
part, and two conditions on the unpartitioned publish asset stand in for them:
- `ShardsUpdatedSinceHandled`: a shard dep recorded a materialization after the storage id that
  the last publish request or run covers (one indexed query per dep: its newest materialization's
  storage id; it keeps its own "handled" id rather than sitting inside `since_last_handled()`,
  whose same-tick reset dropped shard re-runs under the daemon);
- `ShardsReady`: every registered shard of each shard dep is materialized, none is in progress and
  no blocking check failed on any shard (materialized / in progress: Dagster's per-tick cached
  subsets of the asset graph view; failed checks: `check_failures.py`, which reads only the
  check rows and materializations new since its last tick; nothing of it serialized).
Their results are subsets of the unpartitioned asset (one bit each) plus a short reason in metadata.
"""

from __future__ import annotations

import json

import dagster as dg

from laion_assets.defs.automation.check_failures import failed_shard_checks
from laion_assets.defs.lib.partitions import shard_partitions

SHOWN_KEYS = 5  # shard keys named in a not-ready reason
# The partitioned shard stages (`shards` partitions; a test pins the list): the deps the two
# conditions below stand for.
SHARD_ASSETS = dg.AssetSelection.assets("image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs",
                                        "filtered_pairs_drop_log")


def _shard_deps(context: dg.AutomationContext) -> list[dg.AssetKey]:
    graph = context.asset_graph
    return sorted((k for k in graph.get(context.key).parent_keys
                   if graph.has(k) and graph.get(k).partitions_def == shard_partitions), key=str)


class ShardsUpdatedSinceHandled(dg.AutomationCondition):
    """True while a shard dep has a materialization that no publish run has handled yet.

    "Handled" is a storage id, not a tick: the newest of (a) the max storage id of the tick that
    last requested this asset (the run it launched reads the shards after that) and (b) the newest
    ASSET_MATERIALIZATION_PLANNED event of this asset (a run created by anyone, the UI or
    `takedown rederive` included: it reads the shards after that). A shard materialization with a
    larger storage id is not handled yet. One indexed query per shard dep and one for the planned
    event per tick; the handled id of (a) lives in this node's cursor.

    Why not `(... | shard updated this tick).since_last_handled()`: when the tick after a publish
    request sees both the publish's own request/materialization (the reset) and a shard re-run that
    landed after it (the trigger), Dagster's SinceCondition drops the trigger: it resolves "both
    true" by timing metadata, which its OR operators do not pass on (dagster 1.13.27,
    operators/since_operator.py, boolean_operators.py). Under the daemon that stalled publish after
    a shard re-run (docs/operations.md); comparing storage ids has no such tie."""

    @property
    def name(self) -> str:
        return "shards_updated_since_handled"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        deps = _shard_deps(context)
        if not deps:
            return dg.AutomationResult(context, true_subset=context.get_empty_subset())
        instance = context.asset_graph_view.instance
        previous = json.loads(context.cursor) if context.cursor else None
        if previous is None:
            # first evaluation (like since_last_handled's initial_evaluation): what is there now counts as handled
            handled = context.max_storage_id or 0
        else:
            handled = previous["handled"]
            requested = context.get_previous_requested_subset(context.key)
            if requested is not None and not requested.is_empty and context.previous_max_storage_id is not None:
                handled = max(handled, context.previous_max_storage_id)
        planned = instance.get_latest_planned_materialization_info(context.key)
        if planned is not None:
            handled = max(handled, planned.storage_id)
        updated = []
        for key in deps:
            newest = instance.fetch_materializations(key, limit=1).records
            if newest and newest[0].storage_id > handled:
                updated.append(key.to_user_string())
        true = context.candidate_subset if updated else context.get_empty_subset()
        return dg.AutomationResult(context, true_subset=true, cursor=json.dumps({"handled": handled}),
                                   metadata={"updated_shard_assets": dg.MetadataValue.text(", ".join(updated) or "-"),
                                             "handled_storage_id": dg.MetadataValue.int(handled)})


def _keys_text(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:SHOWN_KEYS]) + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


class ShardsReady(dg.AutomationCondition):
    """True when, for every shard dep, every registered shard is materialized, none is in progress
    and no blocking check of the dep failed on any shard."""

    @property
    def name(self) -> str:
        return "shards_ready"

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # ty: ignore[invalid-method-override]
        view = context.asset_graph_view
        why: list[str] = []
        if context.candidate_subset.is_empty:  # an earlier part of the gate is false: nothing to add
            return dg.AutomationResult(context, true_subset=context.candidate_subset, metadata={"not_ready": dg.MetadataValue.text("-")})
        for key in _shard_deps(context):
            full = view.get_full_subset(key=key)
            missing = await view.compute_missing_subset(key=key, from_subset=full)
            if not missing.is_empty:
                why.append(f"{key.to_user_string()}: {missing.size} of {full.size} shards missing ({_keys_text(missing.expensively_compute_partition_keys())})")
            running = await view.compute_run_in_progress_subset(key=key, from_subset=full)
            if not running.is_empty:
                why.append(f"{key.to_user_string()}: {running.size} shards in progress")
            blocking = tuple(sorted((k for k in context.asset_graph.get(key).check_keys if context.asset_graph.get(k).blocking), key=str))
            for check_key, failed in sorted(failed_shard_checks(view.instance, blocking).items(), key=str):
                if failed:
                    why.append(f"{check_key.to_user_string()} failed on {len(failed)} shards ({_keys_text(failed)})")
        true = context.get_empty_subset() if why else context.candidate_subset
        return dg.AutomationResult(context, true_subset=true,
                                   metadata={"not_ready": dg.MetadataValue.text("; ".join(why) or "-")})


def gated_publish_condition(no_blocking_check_failed: dg.AutomationCondition) -> dg.AutomationCondition:
    """`eager()` and `no_blocking_check_failed` over the unpartitioned deps, the shard deps through
    `ShardsUpdatedSinceHandled` / `ShardsReady` (same meaning, one evaluation per dep and tick)."""
    shards = SHARD_ASSETS
    return (
        ((dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated().ignore(shards))
         .since_last_handled() | ShardsUpdatedSinceHandled())
        & ~dg.AutomationCondition.any_deps_missing().ignore(shards)
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(shards)
        & ~dg.AutomationCondition.in_progress()
        & no_blocking_check_failed.ignore(shards)
        & ShardsReady()
    ).with_label("eager, once every registered shard is ready")
