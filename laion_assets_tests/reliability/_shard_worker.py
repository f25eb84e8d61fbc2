"""A subprocess the reliability tests start: materialize assets of one partition in a real instance.

    python -m laion_assets_tests.reliability._shard_worker --partition CRAWL/00000 [--light]

`DAGSTER_HOME` names the instance (shared by every worker of a test) and the LAION_* variables the
settings, exactly as a run launched by `dagster` would see them. `--light` materializes only
extraction and download only (a fast run for the smoke tests);
otherwise the whole `shard_job` runs (or `--job` names another job). Exit status 0 = run succeeded.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg


def light_run(partition: str, instance: dg.DagsterInstance, tags: dict[str, str] | None = None) -> bool:
    """Extraction + download of one partition (no CLIP import); also called in-process by tests."""
    from laion_assets.definitions import build_resources
    from laion_assets.defs.download.assets import image_downloads
    from laion_assets.defs.extract.assets import image_text_pairs
    from laion_assets.settings import load_settings

    result = dg.materialize(
        [image_text_pairs, image_downloads],
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
        tags=tags,
        resources=build_resources(load_settings()),  # the code location's own resources
    )
    return result.success


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partition")
    ap.add_argument("--job", default="shard_job")
    ap.add_argument("--light", action="store_true")
    ap.add_argument("--tag", default="", help="value of the run tag laion/probe (how a test finds the run)")
    args = ap.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        tags = {"laion/probe": args.tag} if args.tag else None
        if args.light:
            return 0 if light_run(args.partition, instance, tags) else 1
        from laion_assets.definitions import build_definitions

        job = build_definitions().resolve_job_def(args.job)
        kwargs = {"partition_key": args.partition} if args.partition else {}
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        tags=tags, **kwargs)
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
