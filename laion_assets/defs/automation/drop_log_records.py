"""Record the drop logs of shards materialized before `filtered_pairs_drop_log` became an output of
the `filtered_pairs` step. On such an instance those shards' drop-log partitions read as missing,
and publish waits for them (declarative automation sees materializations only); their files are on
storage already, so a runless materialization per shard records them without re-running anything.
"""

from __future__ import annotations

import dagster as dg

from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.defs.lib.partitions import shard_partitions

DROP_LOG = dg.AssetKey("filtered_pairs_drop_log")
RECORDED_BY = "python -m laion_assets.ops drop-logs record"


def record_existing_drop_logs(instance: dg.DagsterInstance, st: Storage) -> tuple[list[str], list[str]]:
    """(shards recorded, shards whose drop-log file is absent: re-run those). Only shards whose
    `filtered_pairs` is materialized and whose drop log is not are looked at; running it again
    records nothing new."""
    keys = set(instance.get_dynamic_partitions(shard_partitions.name))
    todo = (keys & instance.get_materialized_partitions(dg.AssetKey("filtered_pairs"))) - \
        instance.get_materialized_partitions(DROP_LOG)
    recorded, absent = [], []
    for key in sorted(todo):
        path = ShardPaths.from_partition_key(key).drops
        if not st.exists(path):
            absent.append(key)
            continue
        instance.report_runless_asset_event(dg.AssetMaterialization(
            DROP_LOG, partition=key, metadata={"path": dg.MetadataValue.path(st.uri(path)), "recorded_by": RECORDED_BY}))
        recorded.append(key)
    return recorded, absent
