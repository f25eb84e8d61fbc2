"""Bench: the instance at 1k / 9k / 30k (and 100k) registered shards, on SQLite and a real PostgreSQL.

    python bench/instance_scale.py --sizes 1000,9000,30000 --storage sqlite,postgres --condition eager,shipped
    python bench/instance_scale.py --sizes 1000,100000 --storage sqlite --condition eager,shipped \
        --graphql off --slow-max 1000 --fill gate

For each size: N shard partitions registered, 90 % of them done (each stage's materialization and
every check's evaluation, written in bulk by `laion_assets.testing.instance_fill`: the rows a shard
run records); one done shard has a failed non-blocking check. Timed, each alone:
- `tick_s`: one `shard_backfill` tick (`plan_backfill`);
- `eval_s` / `eval_next_s`: a `publish_automation` tick as the daemon runs it (`daemon_tick`), the
  first without a cursor, the next with it (the daemon ticks every 60 s; one untimed tick warms
  Dagster's partition status cache first, as a running daemon has);
- `eval_done_s`: the remaining 10 % then done: the tick that must check every shard and open the
  gate (it fails unless it requests `stg_filtered_pairs`);
- `progress_s`: `crawl_progress` (the per-crawl view and CLI; a few run queries per 1,000 unfinished
  shards since `failures_by_shard`, so timed at every size);
- GraphQL (`--graphql on`, the webserver's schema against a code server started from
  `workspace.yaml`, as `dagster dev` runs it): `gql_partitions_s` (an asset's partitions page:
  keys and statuses of `filtered_pairs`), `gql_stats_s` (the catalog's partition counts of the 4
  stages), `gql_checks_s` (the checks view with per-shard status; up to `--slow-max` shards).
`--condition`: which publish gate the definitions carry, timed on the same instance: `shipped` (the
code's, `shard_gate.py`), `eager` (Dagster's conditions over every dep partition, the issue-20 gate
before `shard_gate.py`), `before` (the pre-issue-20 `eager() & all_deps_blocking_checks_passed()`).
Last line: `bench: instance_scale partitions=<largest N> ... ratio=<eval_done_s per partition at the
largest N / at the smallest N>` for the last condition (1.0 = linear; below 1 = sub-linear).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

STAGES = ["image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs"]
PARTITIONS_QUERY = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode { id
  partitionKeysByDimension { name partitionKeys }
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions } } } } }"""
STATS_QUERY = """query($ks: [AssetKeyInput!]) { assetNodes(assetKeys: $ks) { id
  partitionStats { numMaterialized numMaterializing numPartitions numFailed } } }"""
CHECKS_QUERY = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode { id
  assetChecksOrError { ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { id runId status timestamp partition evaluation { severity } }
    partitionStatuses { ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions
      inProgressPartitions skippedPartitions executionFailedPartitions } } } } } } } }"""
# Dagster 1.13.27's `AssetCheck.partitionStatuses` resolver (which the UI's checks page requests)
# reads dynamic partitions without a `partition_loading_context`: over `shards` it raises "The
# instance is not available to load partitions". `gql_checks_error=1` says the query failed so; it is
# then timed again inside that context (the figure the page would cost once Dagster fixes it).
CHECKS_BUG = "partition_loading_context"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def shard_stages(defs: dg.Definitions):
    from laion_assets.testing.instance_fill import StageEvents

    graph = defs.resolve_asset_graph()
    return [StageEvents(s, tuple((c.name, graph.get(c).blocking) for c in sorted(graph.asset_check_keys, key=str)
                                 if c.asset_key == dg.AssetKey(s))) for s in STAGES]


def fill(instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str], done: list[str], only_gate: bool = False) -> int:
    """Register `keys`; record every stage and check of `done` (the first one with a failed non-blocking check)."""
    from laion_assets.testing.instance_fill import fill_shards

    stages = [s for s in shard_stages(defs) if not only_gate or s.asset in ("image_downloads", "filtered_pairs")]
    nonblocking = next(name for name, blocking in stages[-1].checks if not blocking)
    return fill_shards(instance, keys, done, stages, failed_checks={keys[0]: {nonblocking}})


def gate_target() -> dg.AssetSelection:
    from laion_assets.defs.automation.sensors import publish_automation

    return publish_automation.asset_selection


def daemon_tick(instance: dg.DagsterInstance, defs: dg.Definitions, target: dg.AssetSelection, cursor, evaluation_id: int):
    """One `publish_automation` tick as the asset daemon runs it: `AutomationTickEvaluationContext`
    (its partition loading goes through the tick's caching instance queryer), then the cursor and
    the evaluations serialized as the daemon stores them. Returns (run requests, new cursor)."""
    from dagster._core.definitions.automation_tick_evaluation_context import AutomationTickEvaluationContext
    from dagster._serdes import serialize_value

    context = AutomationTickEvaluationContext(
        evaluation_id=evaluation_id, instance=instance, asset_graph=defs.resolve_asset_graph(), asset_selection=target,
        cursor=cursor, materialize_run_tags={}, observe_run_tags={}, auto_observe_asset_keys=set(),
        logger=logging.getLogger("instance_scale"), emit_backfills=False)
    run_requests, new_cursor, evaluations = context.evaluate()
    serialize_value(new_cursor)
    serialize_value([e.with_run_ids(set()) for e in evaluations])
    return run_requests, new_cursor


class Stopped(Exception):
    pass


def limited(limit_s: int, fn, *args) -> tuple[float, object]:
    """`timed(fn, *args)`, stopped after `limit_s` (then `(limit_s, None)`). Dagster wraps what a
    condition raises, so the alarm is recognised by its flag, not by the exception's type."""
    fired = []

    def stop(*_):
        fired.append(True)
        raise Stopped()

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(limit_s)
    try:
        return timed(fn, *args)
    except Exception:
        if fired:
            return float(limit_s), None
        raise
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def measure_in_progress(instance: dg.DagsterInstance, defs: dg.Definitions, progress: bool,
                        limit_s: int) -> tuple[dict[str, float], object]:
    """The crawl 90 % done: schedule tick, two gate ticks (first without a cursor, then with it), progress.
    A gate tick stopped after `limit_s` is recorded as `<limit>` with `stopped=1`."""
    from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor

    from laion_assets.defs.automation.progress import crawl_progress
    from laion_assets.defs.automation.schedules import BackfillSettings, plan_backfill

    r: dict[str, float] = {}
    target = gate_target()
    r["tick_s"], _ = timed(plan_backfill, instance, BackfillSettings(max_concurrent_runs=64))
    if progress:
        r["progress_s"], _ = timed(crawl_progress, instance, BackfillSettings())
    _, warm = limited(limit_s, daemon_tick, instance, defs, target, AssetDaemonCursor.empty(), 1)  # a running daemon's caches
    if warm is None:
        r["stopped"] = 1.0
        return {**r, "eval_s": float(limit_s)}, None
    r["eval_s"], out = limited(limit_s, daemon_tick, instance, defs, target, AssetDaemonCursor.empty(), 1)
    if out is None:
        r["stopped"] = 1.0
        return r, warm[1]
    r["eval_next_s"], out2 = limited(limit_s, daemon_tick, instance, defs, target, out[1], 2)
    if out2 is None:
        r["stopped"] = 1.0
        return r, out[1]
    return r, out2[1]


def measure_done(instance: dg.DagsterInstance, defs: dg.Definitions, cursor, limit_s: int) -> dict[str, float]:
    """Every shard done since the last tick: the tick that must open the gate (it checks every shard)."""
    if cursor is None:
        return {"eval_done_s": float(limit_s), "stopped": 1.0}
    r: dict[str, float] = {}
    r["eval_done_s"], out = limited(limit_s, daemon_tick, instance, defs, gate_target(), cursor, 3)
    if out is None:
        return {**r, "stopped": 1.0}
    selected = {k for req in out[0] for k in (req.asset_selection or [])}
    r["requested_done"] = float(len(selected))
    if dg.AssetKey("stg_filtered_pairs") not in selected:
        raise RuntimeError("every shard done and its blocking checks passed, but the gate did not request stg_filtered_pairs")
    return r


def measure_graphql(instance: dg.DagsterInstance, gql, checks_view: bool) -> dict[str, float]:
    from dagster_graphql.test.utils import execute_dagster_graphql

    def q(query, variables):
        result = execute_dagster_graphql(gql(), query, variables)
        if result.errors:
            raise RuntimeError(f"GraphQL errors: {result.errors}")
        return result.data

    r: dict[str, float] = {}
    key = {"path": ["filtered_pairs"]}
    r["gql_partitions_s"], data = timed(q, PARTITIONS_QUERY, {"k": key})
    statuses = data["assetNodeOrError"]["assetPartitionStatuses"]
    assert len(statuses["materializedPartitions"]) > 0, "the partitions page shows no materialized shard"
    r["gql_stats_s"], _ = timed(q, STATS_QUERY, {"ks": [{"path": [s]} for s in STAGES]})
    if not checks_view:
        return r
    try:
        r["gql_checks_s"], data = timed(q, CHECKS_QUERY, {"k": key})
        r["gql_checks_error"] = 0.0
    except Exception as exc:  # noqa: BLE001 - Dagster 1.13.27: see CHECKS_BUG
        if CHECKS_BUG not in str(exc):
            raise
        from dagster._core.definitions.partitions.context import partition_loading_context

        r["gql_checks_error"] = 1.0
        with partition_loading_context(dynamic_partitions_store=instance):
            r["gql_checks_s"], data = timed(q, CHECKS_QUERY, {"k": key})
    checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
    assert any(c["partitionStatuses"]["failedPartitions"] for c in checks), "the checks view misses the failed shard"
    return r


@contextlib.contextmanager
def open_instance(storage: str, home: Path):
    from laion_assets.testing.postgres import postgres_server

    home.mkdir(parents=True)
    telemetry = "telemetry:\n  enabled: false\n"
    if storage == "sqlite":
        (home / "dagster.yaml").write_text(telemetry)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            yield instance
        finally:
            instance.dispose()
        return
    with postgres_server() as pg:
        (home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {pg.url}\n{telemetry}")
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            yield instance
        finally:
            instance.dispose()


@contextlib.contextmanager
def graphql_context(instance: dg.DagsterInstance, enabled: bool):
    """The webserver's request context over a code server started from workspace.yaml."""
    if not enabled:
        yield None
        return
    from dagster_graphql.test.utils import define_out_of_process_workspace

    root = Path(__file__).resolve().parents[1]
    with define_out_of_process_workspace(str(root / "workspace.yaml"), None, instance) as process_context:
        yield process_context.create_request_context


BEFORE = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def build_defs(condition: str) -> dg.Definitions:
    """The code location's definitions with the publish gate named by `condition` (see the docstring)."""
    from laion_assets.definitions import build_definitions
    from laion_assets.defs.automation.schedules import EAGER_PUBLISH_CONDITION, PUBLISH_CONDITION
    from laion_assets.settings import load_settings

    defs = build_definitions(load_settings())
    if condition == "shipped":
        return defs
    swap = {"before": BEFORE, "eager": EAGER_PUBLISH_CONDITION}[condition]
    return defs.map_asset_specs(func=lambda spec: spec.replace_attributes(automation_condition=swap)
                                if spec.automation_condition is PUBLISH_CONDITION else spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,9000,30000")
    ap.add_argument("--storage", default="sqlite,postgres")
    ap.add_argument("--condition", default="shipped", help="comma-separated, timed in this order: shipped, eager, before")
    ap.add_argument("--graphql", choices=["on", "off"], default="on")
    ap.add_argument("--slow-max", type=int, default=9000,
                    help="largest N at which the slow view is timed: the GraphQL checks view (quadratic in "
                         "Dagster 1.13.27: 56 s at 3,000 shards)")
    ap.add_argument("--eval-limit-s", type=int, default=300,
                    help="a gate tick longer than this is stopped (recorded as the limit, with stopped=1)")
    ap.add_argument("--fill", choices=["full", "gate"], default="full",
                    help="gate: only the gate's shard deps (image_downloads, filtered_pairs) and their checks, for 100k")
    ap.add_argument("--landing", type=int, default=0,
                    help="time the done tick after only the last N shards landed (the rest absorbed by an untimed tick)")
    ap.add_argument("--tmp", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the SQLite instances live (tmpfs by default: the bench times queries, not fsync)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="instance-scale-", dir=args.tmp))
    os.environ.setdefault("LAION_ASSETS_PROFILE", "embedded")
    os.environ.setdefault("LAION_ASSETS_ROOT", str(tmp / "data"))
    logging.getLogger("dagster").setLevel(logging.WARNING)
    print(f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    try:
        run(args, sizes, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, sizes: list[int], tmp: Path) -> None:
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    conditions = args.condition.split(",")
    for storage in args.storage.split(","):
        for n in sizes:
            with open_instance(storage, tmp / f"{storage}-{n}") as instance:
                defs = {c: build_defs(c) for c in conditions}
                keys = [f"CC-MAIN-2024-22/{i:05d}" for i in range(n)]
                split = int(n * 0.9)
                wall = time.perf_counter()
                events = fill(instance, defs[conditions[0]], keys, keys[:split], args.fill == "gate")
                fill_s = time.perf_counter() - wall
                cursors = {}
                for c in conditions:
                    cpu = time.process_time()
                    results[(storage, c, n)], cursors[c] = measure_in_progress(instance, defs[c], True,
                                                                                     args.eval_limit_s)
                    results[(storage, c, n)]["cpu_s"] = time.process_time() - cpu
                last = keys[split:][-args.landing:] if args.landing else []
                events += fill(instance, defs[conditions[0]], keys, keys[split:len(keys) - len(last)], args.fill == "gate")
                if last:  # the burst absorbed by one tick each, then only the last `landing` shards land
                    for c in conditions:
                        _, out = limited(args.eval_limit_s, daemon_tick, instance, defs[c], gate_target(), cursors[c], 3)
                        cursors[c] = out[1] if out else None
                    events += fill(instance, defs[conditions[0]], keys, last, args.fill == "gate")
                for c in conditions:
                    cpu = time.process_time()
                    results[(storage, c, n)].update(measure_done(instance, defs[c], cursors[c], args.eval_limit_s))
                    results[(storage, c, n)]["cpu_s"] += time.process_time() - cpu
                if args.graphql == "on":
                    with graphql_context(instance, True) as gql:
                        results[(storage, conditions[-1], n)].update(measure_graphql(instance, gql, n <= args.slow_max))
                for c in conditions:
                    print(f"{storage} condition={c} partitions={n} events={events} fill_s={fill_s:.1f} "
                          + " ".join(f"{k}={v:.3f}" for k, v in results[(storage, c, n)].items())
                          + f" loadavg={Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    lo, hi = min(sizes), max(sizes)
    storage, condition = args.storage.split(",")[0], conditions[-1]
    a, b = results[(storage, condition, lo)], results[(storage, condition, hi)]
    ratio = (b["eval_done_s"] / hi) / (a["eval_done_s"] / lo)
    extra = "".join(f" {k}={b[k]:.3f}" for k in ("progress_s", "gql_partitions_s", "gql_checks_s") if k in b)
    if len(conditions) > 1:
        extra += f" eval_done_s_{conditions[0]}={results[(storage, conditions[0], hi)]['eval_done_s']:.3f}"
    print(f"bench: instance_scale partitions={hi} storage={storage} condition={condition} tick_s={b['tick_s']:.3f} "
          f"eval_s={b['eval_s']:.3f} eval_next_s={b.get('eval_next_s', float('nan')):.3f} eval_done_s={b['eval_done_s']:.3f}{extra} "
          f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
