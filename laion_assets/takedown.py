"""Takedown commands: `python -m laion_assets.takedown file <path> [--source NAME] [--root ROOT]`,
`python -m laion_assets.takedown rederive [--confirm-source NAME] [--confirm-row-loss]` and
`python -m laion_assets.takedown sweep [--root ROOT]`.

`file` validates a removal request at once (strict: a file that cannot be used as a whole is
refused with its reasons and exit status 1, and nothing is filed), copies it under
`<root>/removal/requests/` through the pipeline's storage (a local directory or `s3://`), writes its
pending receipt and prints the request id. The next re-derive (`rederive`, or `removal_requests_sensor`:
`takedown_job` when only removal entries changed, else `publish_job`) applies it; the receipt then says in which versions it landed and how many rows it removed.
A re-derive purges the removed rows the release held; `sweep` then purges every other stored image
the removal list matches (below the CLIP threshold, duplicates: `purge_stored_removals`, which reads
every shard's status table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from laion_assets.core.removal.guards import flag_entries
from laion_assets.core.removal.requests import REJECTED, read_request

USAGE_ERROR, REFUSED = 2, 1


def _file_name(path: Path, source: str | None) -> str:
    """The name the request is filed under: the file's own, or `--source` plus the file's suffixes
    that matter (`.csv`, `.tsv`, `.parquet`, `.<kind>.txt`)."""
    if source is None:
        return path.name
    parts = path.name.split(".")
    keep = parts[-2:] if parts[-1] == "txt" and len(parts) >= 3 else parts[-1:]
    return ".".join([source, *keep])


def file_request(path: Path, *, source: str | None, root: str | None, out=None) -> int:
    from laion_assets.definitions import build_resources
    from laion_assets.settings import load_settings

    out = out or sys.stdout
    try:
        data = path.read_bytes()
    except OSError as e:
        print(f"cannot read {path}: {e.strerror}", file=out)
        return USAGE_ERROR
    name = _file_name(path, source)
    request = read_request(name, str(path), data)
    if request is None:
        print(f"{name}: not a request file (name it <source>.csv, .tsv, .parquet or <source>.<kind>.txt)", file=out)
        return USAGE_ERROR
    for r in request.record()["entries_rejected"]:
        print(f"  line {r['line']}: rejected ({r['kind'] or 'no kind'}): {r['reason']}", file=out)
    if request.status == REJECTED:
        print(f"{name}: REJECTED, nothing filed: {request.reason}", file=out)
        return REFUSED
    import dagster as dg

    settings = load_settings(overrides=None if root is None else {"LAION_ASSETS_ROOT": root})
    # Resolved the way a run resolves it (EnvVar credentials, the S3 endpoint), outside any run.
    with dg.build_resources({"storage": build_resources(settings)["storage"]}) as resources:
        return _commit(resources.storage.get(), request, name, data, out)


def _commit(st, request, name: str, data: bytes, out) -> int:
    from laion_assets.core.removal.receipts import receipt_path
    from laion_assets.defs.removal.assets import REQUESTS_DIR, write_initial_receipts

    relpath = f"{REQUESTS_DIR}/{name}"
    if st.exists(relpath) and st.read_bytes(relpath) != data:
        print(f"{relpath} is already filed with other content: file this one under another --source", file=out)
        return REFUSED
    st.write_bytes(data, relpath)
    write_initial_receipts(st, [request])
    kinds = ", ".join(f"{k}: {n}" for k, n in request.kinds.items())
    print(f"request {request.request_id} filed as {st.uri(relpath)}: {request.entries.num_rows} entries "
          f"({kinds}), {request.rejected.num_rows} rejected; receipt {st.uri(receipt_path(request.request_id))}",
          file=out)
    for f in flag_entries(request.entries.select(["kind", "value"]).to_pylist()):
        print(f"  WARNING over-broad {f['kind']} entry: {f['reason']} (publish holds it until confirmed)", file=out)
    print(request.request_id, file=out)
    return 0


def rederive(*, confirm_sources: list[str], confirm_row_loss: bool, out=None, instance=None, full: bool = False) -> int:
    """Re-derive every release now, in this process, against the instance in $DAGSTER_HOME (or
    `instance`): `takedown_job` when only removal entries changed since the release index was
    written (no dbt model is built: the incremental path), else `publish_job`; when the removal-only
    run declines the incremental path, `publish_job` runs at once. Every filed request is applied,
    every older version holding a removed row withdrawn, the receipts written. Prints what changed."""
    import contextlib
    import time

    import dagster as dg

    from laion_assets.definitions import build_definitions, build_resources
    from laion_assets.defs.removal.fast_path import FULL_BUILD_TAG, PUBLISH_JOB, choose_job
    from laion_assets.settings import load_settings

    out = out or sys.stdout
    t0 = time.monotonic()
    settings = load_settings()
    config = {"confirm_removal_sources": confirm_sources, "confirm_row_loss": confirm_row_loss}
    defs = build_definitions(settings)
    if full:
        job_name, why = PUBLISH_JOB, "--full"
    else:
        with dg.build_resources({"storage": build_resources(settings)["storage"]}) as resources:
            job_name, why = choose_job(resources.storage.get())
    print(f"re-derive by {job_name}: {why}", file=out)
    with (contextlib.nullcontext(instance) if instance is not None else dg.DagsterInstance.get()) as inst:
        result = _execute(defs, job_name, inst, config)
        if not result.success and inst.get_run_by_id(result.run_id).tags.get(FULL_BUILD_TAG) == "true":
            declined = _failure_messages(result)
            print(f"{job_name} declined the incremental path ({'; '.join(declined)}): re-derive by {PUBLISH_JOB}",
                  file=out)
            job_name, result = PUBLISH_JOB, _execute(defs, PUBLISH_JOB, inst, config)
    if not result.success:
        for message in _failure_messages(result):
            print(message, file=out)
        print(f"re-derive FAILED (run {result.run_id}); nothing was published", file=out)
        return REFUSED
    meta = result.asset_materializations_for_node("published_dataset")[-1].metadata
    for name, v in meta["variants"].value.items():
        diff = v.get("diff") or {}
        print(f"{name}: {v['version']} ({v['rows']} rows; removed {diff.get('rows_removed', 0)} since "
              f"{v.get('previous')}); withdrawn: {', '.join(v.get('withdrawn', [])) or 'none'}", file=out)
    if "rederive" in meta:
        print(f"release step: {meta['rederive'].value} ({meta['rederive_reason'].value})", file=out)
    print(f"re-derived by {job_name} in {time.monotonic() - t0:.1f} s (run {result.run_id})", file=out)
    return 0


def sweep(*, root: str | None, out=None) -> int:
    """Purge every stored image the applied removal list matches, released or not; print what went."""
    import dagster as dg

    from laion_assets.core.release.purge import purge_stored_removals
    from laion_assets.definitions import build_resources
    from laion_assets.settings import load_settings

    out = out or sys.stdout
    settings = load_settings(overrides=None if root is None else {"LAION_ASSETS_ROOT": root})
    with dg.build_resources({"storage": build_resources(settings)["storage"]}) as resources:
        counts = purge_stored_removals(resources.storage.get())
    for shard, c in sorted(counts.items()):
        if c["samples_removed"] or c["status_rows_marked"]:
            print(f"{shard}: {c['samples_removed']} samples removed, {c['tar_members_removed']} tar members, "
                  f"{c['score_rows_removed']} score rows, {c['bytes_freed']} bytes freed", file=out)
    total = sum(c["samples_removed"] for c in counts.values())
    print(f"swept {len(counts)} shard(s) holding a matching image: {total} samples removed", file=out)
    return 0


def _execute(defs, job_name: str, instance, config: dict):
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  run_config={"ops": {"published_dataset": {"config": config}}})


def _failure_messages(result) -> list[str]:
    out = []
    for event in result.all_events:
        if event.is_step_failure and getattr(event.event_specific_data, "error", None):
            out.append(f"{event.step_key}: {event.event_specific_data.error.message.strip()}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m laion_assets.takedown", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    filing = sub.add_parser("file", help="validate a removal request and file it under <root>/removal/requests/")
    filing.add_argument("path", type=Path, help="CSV/TSV (kind,value[,listed_on]), parquet, or <name>.<kind>.txt")
    filing.add_argument("--source", help="file it under this name (default: the file's own name)")
    filing.add_argument("--root", help="storage root (default: LAION_ASSETS_ROOT)")
    again = sub.add_parser("rederive", help="apply every filed request now, in this process ($DAGSTER_HOME's "
                           "instance): takedown_job when only removal entries changed (no dbt), else publish_job; "
                           "every older version that holds a removed row is withdrawn")
    again.add_argument("--confirm-source", action="append", default=[],
                       help="a removal source whose mass or over-broad removal was checked (repeatable)")
    again.add_argument("--confirm-row-loss", action="store_true", help="a large row loss was checked and is intended")
    again.add_argument("--full", action="store_true", help="always publish_job (dbt build of every model first)")
    swept = sub.add_parser("sweep", help="after a re-derive: purge every other stored image the removal list "
                           "matches (below threshold, duplicates; reads every shard's status table)")
    swept.add_argument("--root", help="storage root (default: LAION_ASSETS_ROOT)")
    args = parser.parse_args(argv)
    if args.command == "file":
        return file_request(args.path, source=args.source, root=args.root)
    if args.command == "rederive":
        return rederive(confirm_sources=args.confirm_source, confirm_row_loss=args.confirm_row_loss, full=args.full)
    if args.command == "sweep":
        return sweep(root=args.root)
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
