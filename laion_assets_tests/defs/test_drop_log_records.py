"""An instance from before the drop log was an output of the filtered_pairs step: shards with
`filtered_pairs` materialized and no drop-log record (what publish then waits for). The ops command
records the drop logs whose files exist, names the shards without one, and records nothing twice."""

import dagster as dg
import pyarrow as pa

from laion_assets import ops
from laion_assets.core.storage.layout import ShardPaths
from laion_assets.core.storage.local import LocalStorage

KEYS = ["CC-MAIN-2024-22/00000", "CC-MAIN-2024-22/00001", "CC-MAIN-2024-22/00002"]
DROP_LOG = dg.AssetKey("filtered_pairs_drop_log")


def test_drop_logs_of_old_shards_are_recorded_once(embedded_env, capsys):
    st = LocalStorage(embedded_env["LAION_ASSETS_ROOT"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", KEYS)
        for key in KEYS[:2]:  # what the old step recorded: filtered_pairs only
            instance.report_runless_asset_event(dg.AssetMaterialization("filtered_pairs", partition=key))
        st.write_parquet(pa.table({"key": ["000000001"], "reason": ["low_similarity"]}),
                         ShardPaths.from_partition_key(KEYS[0]).drops)

        assert ops.main(["drop-logs", "record"], instance=instance) == 0
        out = capsys.readouterr().out
        assert "recorded the drop log of 1 shards" in out and f"re-run these shards: {KEYS[1]}" in out
        assert instance.get_materialized_partitions(DROP_LOG) == {KEYS[0]}  # KEYS[2]: not filtered yet

        assert ops.main(["drop-logs", "record"], instance=instance) == 0
        assert "recorded the drop log of 0 shards" in capsys.readouterr().out
        assert len(instance.fetch_materializations(DROP_LOG, limit=10).records) == 1
