"""The removal-only re-derive (`takedown_job`: no dbt model) on a real Dagster instance, real dbt and
DuckDB, the embedded sample: it publishes exactly what `publish_job` publishes after the same request;
a changed shard or another dbt project takes `publish_job`; inside the job a declined incremental
path refuses the full build on the stale warehouse, and the command and the sensor fall back."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from laion_assets.defs.automation.sensors import AlertWebhookResource, run_alerts
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.removal.fast_path import FULL_BUILD_TAG, choose_job
from laion_assets.defs.removal.sensors import removal_requests_sensor
from laion_assets.core.storage.layout import RELEASE_INDEX_STATE
from laion_assets.core.storage.local import LocalStorage
from laion_assets.takedown import rederive

pytestmark = pytest.mark.e2e
DBT_MODELS = {"drop_log", "removal_matches", "published_pairs", "release_drops", "stg_filtered_pairs"}


def _published_rows(sample) -> list[dict]:
    return pq.read_table(sorted(sample.first.release_dir.glob("part-*.parquet"))).to_pylist()


def _file(root: Path, files: dict[str, str]) -> None:
    requests = root / "removal" / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (requests / name).write_text(text)


def _rederive(sample, **kw) -> tuple[str, list[dg.DagsterRun]]:
    lines: list[str] = []

    class Out:
        def write(self, s):
            lines.append(s)

    with dg.instance_for_test(temp_dir=str(sample.home)) as instance:
        known = {r.run_id for r in instance.get_runs()}
        assert rederive(confirm_sources=[], confirm_row_loss=False, out=Out(), instance=instance, **kw) == 0, "".join(lines)
        runs = [r for r in instance.get_runs() if r.run_id not in known][::-1]
        built = [{rec.event_log_entry.dagster_event.asset_key.to_user_string() for rec in instance.get_records_for_run(
            r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records} for r in runs]
    return "".join(lines), list(zip(runs, built))


def _release(root: Path) -> dict:
    """Every variant's LATEST version, its parts' bytes and its manifest's counts."""
    out = {}
    for variant in ("sample", "sample-safe"):
        version = (root / "releases" / variant / "LATEST").read_text().strip()
        d = root / "releases" / variant / version
        manifest = json.loads((d / "manifest.json").read_text())
        out[variant] = {"version": version, "parts": {p.name: p.read_bytes() for p in sorted(d.glob("part-*.parquet"))},
                        "rows": manifest["rows"], "funnel": manifest["funnel"],
                        "sources": manifest["removal"]["sources"],
                        "withdrawn": sorted(p.parent.name for p in (root / "releases" / variant).glob("*/WITHDRAWN.json"))}
    return out


def _receipts(root: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["file"]: json.loads(p.read_text()) for p in (root / "removal" / "receipts").glob("*.json")}


def test_takedown_job_publishes_what_publish_job_publishes(published_sample):
    root = published_sample.root
    # Rows of both variants (which rows the safe variant keeps depends on the machine's floating point).
    safe = set(pq.read_table(sorted(next((root / "releases" / "sample-safe").glob("r-*")).glob("part-*.parquet")),
                             columns=["SAMPLE_ID"]).column("SAMPLE_ID").to_pylist())
    rows = [r for r in _published_rows(published_sample) if r["SAMPLE_ID"] in safe]
    files = {"owner.url.txt": rows[0]["URL"].replace("http://", "HTTP://") + "\n",
             "hotline.image_sha256.txt": rows[-1]["sha256"] + "\n"}
    _file(root, files)
    out, runs = _rederive(published_sample)
    assert "re-derive by takedown_job" in out and "release step: incremental" in out, out
    (run, built), = runs  # one run, no fallback
    assert run.job_name == "takedown_job" and not built & DBT_MODELS, built  # no dbt model was built
    assert {"removal_list", "published_dataset", "search_index", "removal_receipts"} <= built
    fast, fast_receipts = _release(root), _receipts(root)
    assert all(v["withdrawn"] for v in fast.values())  # every offered version that held a removed row
    assert {r["status"] for r in fast_receipts.values()} == {"landed"}
    assert {r["rows_matched"] for r in fast_receipts.values()} == {None}  # the warehouse has not counted them
    # What publish automation (or the next publish_job) does after it: dbt catches up, and the full
    # build publishes nothing new (same versions); the receipts keep their landing (the purged rows
    # are no kept pairs any more: a recount would say 0, so none is made).
    out, runs = _rederive(published_sample, full=True)
    (run, built), = runs
    assert run.job_name == "publish_job" and DBT_MODELS <= built
    assert {v: r["version"] for v, r in _release(root).items()} == {v: r["version"] for v, r in fast.items()}, out
    assert _receipts(root) == fast_receipts

    published_sample.restore()
    _file(root, files)
    out, runs = _rederive(published_sample, full=True)
    (run, built), = runs
    assert run.job_name == "publish_job" and DBT_MODELS <= built
    full, full_receipts = _release(root), _receipts(root)
    assert fast == full  # same versions, part bytes, counts, withdrawals
    for name, receipt in full_receipts.items():
        assert receipt["status"] == "landed" and receipt["rows_matched"] >= 1
        assert {k: v for k, v in receipt.items() if k not in ("rows_matched", "landed_at", "filed_at")} == \
               {k: v for k, v in fast_receipts[name].items() if k not in ("rows_matched", "landed_at", "filed_at")}


def test_a_changed_shard_or_dbt_project_takes_publish_job(published_sample):
    root = published_sample.root
    st = LocalStorage(root)
    assert choose_job(st)[0] == "takedown_job"
    state = json.loads((root / RELEASE_INDEX_STATE).read_text())
    assert set(state["derived_from"]) == {"dbt_project"}
    from laion_assets.definitions import build_definitions
    from laion_assets.settings import load_settings

    takedown_job = build_definitions(load_settings()).resolve_job_def("takedown_job")
    _file(root, {"owner.url.txt": _published_rows(published_sample)[0]["URL"] + "\n"})
    # An index derived from another dbt project (a model edited since): the full job; and the
    # release step itself will not re-derive from that index (takedown_job then refuses the full build).
    (root / RELEASE_INDEX_STATE).write_text(json.dumps({**state, "derived_from": {"dbt_project": "dbt-0000"}}))
    job, why = choose_job(st)
    assert job == "publish_job" and "dbt_project" in why, why
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        result = takedown_job.execute_in_process(instance=instance, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "derived from another dbt_project" in failure.event_specific_data.error.message
    (root / RELEASE_INDEX_STATE).write_text(json.dumps(state))
    # A shard re-filtered (here: the same rows in other row groups): the full job, saying why.
    shard = sorted((root / "SAMPLE-CRAWL" / "filtered").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    pq.write_table(table, shard, row_group_size=max(1, table.num_rows // 2))
    job, why = choose_job(st)
    assert job == "publish_job" and "shard tables changed" in why, why
    # takedown_job launched all the same (a shard changed after the choice) refuses the full build.
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        result = takedown_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        assert instance.get_run_by_id(result.run_id).tags.get(FULL_BUILD_TAG) == "true"
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "published_dataset"
    assert "shard tables changed" in failure.event_specific_data.error.message
    assert "predates the removal list" in failure.event_specific_data.error.message
    latest = (root / "releases" / "sample" / "LATEST").read_text().strip()
    assert latest == published_sample.first.release_dir.name  # nothing was published


def test_a_declined_takedown_job_falls_back_to_publish_job(published_sample, monkeypatch):
    """A request that removes no published row: takedown_job is chosen (only entries changed), its
    incremental path declines ("nothing published removed") and may not build in full on the
    stale warehouse; the sensor launches publish_job at once, the declined run is not alerted."""
    root = published_sample.root
    _file(root, {"nothing.url.txt": "http://127.0.0.1:1/never-published.jpg\n"})
    from laion_assets.definitions import build_definitions
    from laion_assets.settings import load_settings

    defs = build_definitions(load_settings())
    storage = StorageResource(root=str(root))
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:

        def tick():
            with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as ctx:
                return removal_requests_sensor(ctx)

        first = tick()
        assert isinstance(first, dg.RunRequest) and first.job_name == "takedown_job"
        declined = defs.resolve_job_def("takedown_job").execute_in_process(
            instance=instance, tags=first.tags, raise_on_error=False)
        assert not declined.success
        run = instance.get_run_by_id(declined.run_id)
        assert run.tags[FULL_BUILD_TAG] == "true"
        alerts = run_alerts(instance, run, AlertWebhookResource(url="http://127.0.0.1:1/hook"))
        assert not [a for a, _ in alerts if a.endswith(":run")]  # by design: not a failure to alert
        fallback = tick()  # at once, no backoff
        assert isinstance(fallback, dg.RunRequest) and fallback.job_name == "publish_job"
        assert fallback.run_key != first.run_key
        landed = defs.resolve_job_def("publish_job").execute_in_process(
            instance=instance, tags=fallback.tags, raise_on_error=False)
        assert landed.success
        assert isinstance(tick(), dg.SkipReason)
    receipt = _receipts(root)["nothing.url.txt"]
    assert receipt["status"] == "landed" and set(receipt["rows_removed"].values()) == {0}
    assert receipt["rows_matched"] == 0  # counted by the dbt build
