"""Operator commands against the instance in $DAGSTER_HOME (the same dagster.yaml the daemon uses):

    python -m laion_assets.ops progress                      # per crawl: shards, stages, rows, ETA
    python -m laion_assets.ops shards given-up               # shards the schedule no longer retries
    python -m laion_assets.ops shards retry KEY...           # after a fix: let the schedule retry them
    python -m laion_assets.ops partitions delete KEY...      # remove keys added by mistake
    python -m laion_assets.ops drop-logs record              # once, after upgrading: see docs/operations.md

Deleting a key removes it from the `shards` partitions (what the schedule, publish and the UI list);
the shard's files and its run history stay.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from laion_assets.core.crawl.progress import format_summary
from laion_assets.defs.automation.progress import crawl_progress
from laion_assets.defs.automation.schedules import BackfillSettings, in_flight_partitions
from laion_assets.defs.automation.shard_status import clear_failures, given_up_shards
from laion_assets.defs.lib.partitions import shard_partitions


def delete_partitions(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Lines saying what happened to each key (deleted, or not registered)."""
    out = []
    for key in keys:
        if instance.has_dynamic_partition(shard_partitions.name, key):
            instance.delete_dynamic_partition(shard_partitions.name, key)
            out.append(f"deleted {key}")
        else:
            out.append(f"not registered: {key}")
    return out


def main(argv: list[str] | None = None, instance: dg.DagsterInstance | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m laion_assets.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("progress", help="per-crawl progress summary")
    shards = sub.add_parser("shards").add_subparsers(dest="action", required=True)
    shards.add_parser("given-up")
    retry = shards.add_parser("retry")
    retry.add_argument("keys", nargs="+")
    parts = sub.add_parser("partitions").add_subparsers(dest="action", required=True)
    delete = parts.add_parser("delete")
    delete.add_argument("keys", nargs="+")
    drops = sub.add_parser("drop-logs", help="record drop logs written before they were an asset output")
    drops.add_subparsers(dest="action", required=True).add_parser("record")
    args = parser.parse_args(argv)

    inst = instance or dg.DagsterInstance.get()
    settings = BackfillSettings.from_env()
    if args.cmd == "progress":
        print(format_summary(crawl_progress(inst, settings), time.time()))
    elif args.cmd == "shards" and args.action == "given-up":
        keys = inst.get_dynamic_partitions(shard_partitions.name)
        done = inst.get_materialized_partitions(dg.AssetKey("filtered_pairs"))
        done |= set(in_flight_partitions(inst))  # running, or its automatic retry pending: not given up
        print("\n".join(given_up_shards(inst, [k for k in keys if k not in done],
                                        settings.max_failed_runs_per_shard)) or "no shard is given up")
    elif args.cmd == "shards" and args.action == "retry":
        for key in args.keys:
            run_id = clear_failures(inst, key)
            print(f"{key}: failures before run {run_id} forgiven" if run_id else f"{key}: no failed run")
    elif args.cmd == "partitions" and args.action == "delete":
        print("\n".join(delete_partitions(inst, args.keys)))
    elif args.cmd == "drop-logs" and args.action == "record":
        from laion_assets.definitions import build_resources
        from laion_assets.defs.automation.drop_log_records import record_existing_drop_logs
        from laion_assets.settings import load_settings

        recorded, absent = record_existing_drop_logs(inst, build_resources(load_settings())["storage"].get())
        print(f"recorded the drop log of {len(recorded)} shards")
        if absent:
            print(f"no drop-log file, re-run these shards: {', '.join(absent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
