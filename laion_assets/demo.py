"""The embedded default, in one command: sample crawl -> release, offline, in a local Dagster instance.

    python -m laion_assets.demo [--root data] [--dagster-home .dagster_home]

Materializes every asset for every partition in a persistent instance (open it afterwards with
`dagster dev -w workspace.yaml` using the same DAGSTER_HOME and LAION_ASSETS_ROOT) and prints where
the release is and whether it holds exactly the pairs the sample crawl expects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from laion_assets.settings import load_settings

# The demo's instance is the shipped one-machine config: queued runs, and the `gpu` pool (clip_scores
# steps) limited to one step at a time through `concurrency: pools: default_limit`.
INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "local" / "dagster.yaml"


def prepare_dagster_home(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(INSTANCE_CONFIG.read_text())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=load_settings().root)
    parser.add_argument("--dagster-home", default=os.environ.get("DAGSTER_HOME", ".dagster_home"))
    parser.add_argument(
        "--log-level", default="WARNING", help="console log level of the runs (the instance keeps all)"
    )
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    os.environ["LAION_ASSETS_ROOT"] = str(root)
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(Path(args.dagster_home)))

    import dagster as dg
    from tqdm import tqdm

    from laion_assets.definitions import build_definitions
    from laion_assets.runner import failed_checks, run_pipeline

    settings = load_settings()
    print(f"laion-assets demo: profile={settings.profile} root={root} model={settings.clip_model}")
    defs = build_definitions(settings)
    with dg.DagsterInstance.get() as instance:
        bar = tqdm(desc="shards", unit="shard")

        def on_shard(key: str, done: int, total: int, counts: dict[str, int]) -> None:
            bar.total = total
            bar.set_postfix_str(key)
            bar.update(1)
            tqdm.write(
                f"  {key}: {counts.get('image_text_pairs', 0)} pairs, {counts.get('images_ok', 0)} images ok, "
                f"{counts.get('clip_scores', 0)} scored, {counts.get('filtered_pairs', 0)} kept"
            )

        run = run_pipeline(defs, instance, on_shard=on_shard, log_level=args.log_level)
        bar.close()
        bad = failed_checks(instance, run.run_ids)

    from laion_assets.core.storage.layout import SAMPLE_CRAWL_DIR
    from laion_assets.core.storage.local import LocalStorage

    expected_file = LocalStorage(root).local_dir(SAMPLE_CRAWL_DIR) / "expected.json"
    print(f"release {run.release_version}: {run.release_rows} pairs in {run.release_dir}")
    print(f"  dataset card: {run.release_dir / 'README.md'}")
    print(f"  shards: {len(run.partition_keys)}; failed asset checks: {bad or 'none'}")
    if settings.profile == "embedded" and expected_file.exists():
        import pyarrow.parquet as pq

        expected = {tuple(x) for x in json.loads(expected_file.read_text())}
        got = set()
        for part in sorted(run.release_dir.glob("part-*.parquet")):
            t = pq.read_table(part, columns=["URL", "TEXT"])
            got |= set(zip(t.column("URL").to_pylist(), t.column("TEXT").to_pylist()))
        verdict = "matches" if got == expected else "DIFFERS FROM"
        print(f"  the release {verdict} the sample's expected {len(expected)} pairs")
        if got != expected:
            return 1
    print(f"  browse it: DAGSTER_HOME={os.environ['DAGSTER_HOME']} LAION_ASSETS_ROOT={root} "
          f"{Path(sys.executable).parent / 'dagster'} dev -w workspace.yaml")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
