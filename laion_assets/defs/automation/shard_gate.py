"""The publish gate over every registered shard, evaluated once per dep asset and tick, with nothing
per partition kept in the sensor's cursor.

Why not Dagster's own `eager() & ~any_deps_match(...)` over the shard deps: each of its dep nodes
keeps a subset of the `shards` partitions and the tick serializes every one of them into the
cursor and the evaluation records (~280 subsets per tick for the publish group, each walking all
registered keys): the cost grew linearly with the partitions and dominated the tick
(docs/scaling.md, `bench/instance_scale.py`). Here the shard deps are `ignore`d by the eager
part, and two conditions on the unpartitioned publish asset stand in for them:
- `ShardsUpdated`: a shard dep recorded a materialization since the previous tick (one indexed
  query per dep: its newest materialization's storage id against the tick's previous max);
- `ShardsReady`: every registered shard of each shard dep is materialized, none is in progress and
  no blocking check failed on any shard (materialized / in progress: Dagster's per-tick cached
  subsets of the asset graph view; failed checks: `check_failures.py`, which reads only the
  check rows and materializations new since its last tick; nothing of it serialized).
Their results are subsets of the unpartitioned asset (one bit each) plus a short reason in metadata.
"""

from __future__ import annotations

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


class ShardsUpdated(dg.AutomationCondition):
    """True on a tick where any shard dep has a materialization newer than the previous tick saw."""

    @property
    def name(self) -> str:
        return "shards_updated"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        previous = context.previous_max_storage_id
        instance = context.asset_graph_view.instance
        updated = []
        if previous is not None:
            for key in _shard_deps(context):
                newest = instance.fetch_materializations(key, limit=1).records
                if newest and newest[0].storage_id > previous:
                    updated.append(key.to_user_string())
        true = context.candidate_subset if updated else context.get_empty_subset()
        return dg.AutomationResult(context, true_subset=true,
                                   metadata={"updated_shard_assets": dg.MetadataValue.text(", ".join(updated) or "-")})


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
    `ShardsUpdated` / `ShardsReady` (same meaning, one evaluation per dep and tick)."""
    shards = SHARD_ASSETS
    return (
        (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated().ignore(shards)
         | ShardsUpdated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(shards)
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(shards)
        & ~dg.AutomationCondition.in_progress()
        & no_blocking_check_failed.ignore(shards)
        & ShardsReady()
    ).with_label("eager, once every registered shard is ready")
