"""Bench: reading the failures of many unfinished shards, one shard at a time vs batched.

    python bench/shard_failures.py --shards 1000 --storage sqlite,postgres

`crawl_progress` and the schedule's `plan_backfill` need, per unfinished shard, its failed
`shard_job` runs since its newest success or retry mark. Timed on the same instance, in the same
process: `per_key_s`, the reading they did before (three run queries per shard with a failure, one
per shard without: `per_key` below) and `batched_s`, `failures_by_shard` (a few run queries per
1,000 shards). The instance holds `--shards` registered shards, none materialized (all
unfinished), with the failure histories of `laion_assets_tests/defs/test_shard_status.py` in
turn (none; one failure; three: given up; failures around a success; given up, cleared, failed
again); both readings must agree. Postgres: a throwaway server on 127.0.0.1
(`laion_assets.testing.postgres`, `scripts/install_postgres.sh`).
Last line: `bench: shard_failures shards=<N> storage=<first> per_key_s=<s> batched_s=<s> ratio=<per_key_s / batched_s>`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from bench.instance_scale import open_instance  # noqa: E402

F, S = dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS
PATTERNS = [[], [F], [F, F, F], [F, F, S, F], [F, F, F, "clear", F]]
CAP = 3


def per_key(instance: dg.DagsterInstance, key: str, cap: int) -> int:
    """The per-shard reading `failures_by_shard` replaced."""
    def runs(statuses, limit=None, tags=None):
        return instance.get_run_records(dg.RunsFilter(job_name="shard_job", statuses=statuses,
                                                      tags={"dagster/partition": key, **(tags or {})}),
                                        limit=limit, order_by="create_timestamp", ascending=False)
    failed = runs([F], limit=cap)
    if not failed:
        return 0
    marks = [r.create_timestamp for r in runs([S], limit=1)]
    marks += [r.create_timestamp for r in runs([F], 1, {"laion-assets/retry-cleared": "1"})]
    since = max(marks, default=None)
    return sum(1 for r in failed if since is None or r.create_timestamp > since)


def fill(instance: dg.DagsterInstance, keys: list[str]) -> None:
    from laion_assets.defs.automation.shard_status import clear_failures

    instance.add_dynamic_partitions("shards", keys)
    for i, key in enumerate(keys):
        for step in PATTERNS[i % len(PATTERNS)]:
            if step == "clear":
                clear_failures(instance, key)
            else:
                instance.add_run(dg.DagsterRun(job_name="shard_job", run_id=str(uuid.uuid4()), status=step,
                                               tags={"dagster/partition": key}))
                time.sleep(0.002)  # runs are ordered by creation time


def main() -> None:
    from laion_assets.defs.automation.shard_status import failures_by_shard

    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=1000)
    ap.add_argument("--storage", default="sqlite,postgres")
    args = ap.parse_args()
    print(f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    out = {}
    with tempfile.TemporaryDirectory(prefix="shard-failures-") as tmp:
        for storage in args.storage.split(","):
            with open_instance(storage, Path(tmp) / storage) as instance:
                keys = [f"CC-MAIN-2024-22/{i:05d}" for i in range(args.shards)]
                fill(instance, keys)
                wall, cpu = time.perf_counter(), time.process_time()
                old = {k: per_key(instance, k, CAP) for k in keys}
                per_key_s, per_key_cpu = time.perf_counter() - wall, time.process_time() - cpu
                wall, cpu = time.perf_counter(), time.process_time()
                new = failures_by_shard(instance, keys, cap=CAP)
                batched_s, batched_cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert new == old, "the batched reading differs from the per-shard one"
                out[storage] = (per_key_s, batched_s)
                print(f"{storage} shards={args.shards} given_up={sum(v >= CAP for v in new.values())} "
                      f"failed={sum(0 < v < CAP for v in new.values())} per_key_s={per_key_s:.3f} "
                      f"per_key_cpu_s={per_key_cpu:.3f} batched_s={batched_s:.3f} batched_cpu_s={batched_cpu:.3f} "
                      f"loadavg={Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    first = args.storage.split(",")[0]
    a, b = out[first]
    print(f"bench: shard_failures shards={args.shards} storage={first} per_key_s={a:.3f} batched_s={b:.3f} "
          f"ratio={a / b:.1f}")


if __name__ == "__main__":
    main()
