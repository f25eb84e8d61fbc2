"""Bench: the instance at 1k / 9k / 30k registered shards, on SQLite and on a real PostgreSQL.

    python bench/instance_scale.py --sizes 1000,9000,30000 --storage sqlite,postgres

For each size: N shard partitions registered, 90% with a `filtered_pairs` materialization (reported
as runless events, what a shard run records last), then timed: one `shard_backfill` tick
(`plan_backfill`), and the publish automation evaluation (`evaluate_automation_conditions` over the
publish group, first tick and a second tick with the cursor). GraphQL times are not measured here.
Last line: `bench: instance_scale partitions=<largest N> ... ratio=<eval s per partition at the
largest N / at the smallest N>` (1.0 = linear; below 1 = sub-linear).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402


def fill(instance: dg.DagsterInstance, n: int) -> list[str]:
    keys = [f"CC-MAIN-2024-22/{i:05d}" for i in range(n)]
    instance.add_dynamic_partitions("shards", keys)
    for k in keys[: int(n * 0.9)]:
        instance.report_runless_asset_event(dg.AssetMaterialization("filtered_pairs", partition=k))
    return keys


def measure(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, float]:
    from laion_assets.defs.automation.schedules import BackfillSettings, plan_backfill

    t = time.perf_counter()
    plan_backfill(instance, BackfillSettings(max_concurrent_runs=64))
    tick = time.perf_counter() - t
    publish = dg.AssetSelection.groups("publish")
    t = time.perf_counter()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish)
    eval1 = time.perf_counter() - t
    t = time.perf_counter()
    dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=publish, cursor=first.cursor)
    eval2 = time.perf_counter() - t
    return {"tick_s": tick, "eval_first_s": eval1, "eval_next_s": eval2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,9000,30000")
    ap.add_argument("--storage", default="sqlite,postgres")
    ap.add_argument("--condition", choices=["shipped", "before"], default="shipped",
                    help="before: the publish gate before issue 20 (all_deps_blocking_checks_passed), to compare")
    args = ap.parse_args()
    if args.condition == "before":
        import laion_assets.defs.automation.schedules as schedules

        schedules.PUBLISH_CONDITION = (dg.AutomationCondition.eager()
                                       & dg.AutomationCondition.all_deps_blocking_checks_passed())
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="instance-scale-"))
    os.environ.setdefault("LAION_ASSETS_PROFILE", "embedded")
    os.environ.setdefault("LAION_ASSETS_ROOT", str(tmp / "data"))
    import logging

    logging.getLogger("dagster").setLevel(logging.WARNING)
    from laion_assets.definitions import build_definitions
    from laion_assets.settings import load_settings
    from laion_assets.testing.postgres import postgres_server

    defs = build_definitions(load_settings())
    results: dict[tuple[str, int], dict[str, float]] = {}
    for storage in args.storage.split(","):
        for n in sizes:
            home = tmp / f"{storage}-{n}"
            home.mkdir()
            if storage == "sqlite":
                ctx = None
                (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
                instance = dg.DagsterInstance.from_config(str(home))
            else:
                ctx = postgres_server()
                pg = ctx.__enter__()
                (home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {pg.url}\ntelemetry:\n  enabled: false\n")
                instance = dg.DagsterInstance.from_config(str(home))
            cpu, wall = time.process_time(), time.perf_counter()
            fill(instance, n)
            fill_s = time.perf_counter() - wall
            r = measure(instance, defs)
            r["cpu_s"] = time.process_time() - cpu
            results[(storage, n)] = r
            print(f"{storage} partitions={n} fill_s={fill_s:.1f} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            instance.dispose()
            if ctx is not None:
                ctx.__exit__(None, None, None)
    lo, hi = min(sizes), max(sizes)
    storage = args.storage.split(",")[0]
    a, b = results[(storage, lo)], results[(storage, hi)]
    ratio = (b["eval_first_s"] / hi) / (a["eval_first_s"] / lo)
    print(f"bench: instance_scale partitions={hi} storage={storage} condition={args.condition} tick_s={b['tick_s']:.3f} "
          f"eval_s={b['eval_first_s']:.3f} eval_next_s={b['eval_next_s']:.3f} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
