"""Refuse a shard key that names no shard of its crawl's manifest, at once and for good.

The launchpad's "Add a partition" registers any well-formed key, so "registered" is not enough: the
key must be a shard of its crawl's manifest. A refused key fails the step with
`Failure(allow_retries=False)` (no step retry) and tags the run so the instance's run retries skip it
(`dagster/retry_on_asset_or_op_failure=false`): the same key fails the same way. The message says
what to do with the key (delete it), not to rebuild a manifest that is fine.
"""

from __future__ import annotations

import re

import dagster as dg

from laion_assets.core.storage.layout import manifest_path
from laion_assets.core.storage.base import Storage

KEY_SHAPE = re.compile(r"^[A-Za-z0-9._-]+/[0-9]+$")
NO_RUN_RETRY = {"dagster/retry_on_asset_or_op_failure": "false"}
DELETE_HINT = "python -m laion_assets.ops partitions delete"


def fail_for_good(context: dg.AssetExecutionContext, description: str) -> dg.Failure:
    """A Failure that neither the step's retry policy nor the instance's run retries repeat."""
    context.instance.add_run_tags(context.run_id, NO_RUN_RETRY)
    return dg.Failure(description=description, allow_retries=False)


def unknown_shard_reason(st: Storage, partition_key: str) -> str | None:
    """Why `partition_key` names no shard of a registered manifest (None when it does)."""
    if not KEY_SHAPE.match(partition_key):
        return f"partition key {partition_key!r} is not `<crawl>/<shard number>` (e.g. `CC-MAIN-2024-22/00042`)"
    crawl, shard = partition_key.split("/", 1)
    path = manifest_path(crawl)
    if not st.exists(path):
        return f"partition key {partition_key!r} names crawl {crawl!r}, which has no manifest (no crawl of that name was registered)"
    shards = set(st.read_parquet(path, columns=["shard"]).column("shard").to_pylist())
    if shard not in shards:
        return (f"partition key {partition_key!r}: crawl {crawl!r} has {len(shards)} shards and none is {shard!r} "
                "(a key added by hand, e.g. with \"Add a partition\" in the launchpad?)")
    return None


def require_shard_in_manifest(context: dg.AssetExecutionContext, st: Storage) -> str:
    key = context.partition_key
    reason = unknown_shard_reason(st, key)
    if reason:
        raise fail_for_good(context, f"{reason}. Nothing was run. Remove the key: `{DELETE_HINT} {key}`")
    return key
