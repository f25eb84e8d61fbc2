"""Re-derive every release after a removal request: `takedown_job` when only removal entries changed
(removal list, the release by the incremental path, search index, receipts; no dbt model), else
`publish_job` (removal list, dbt, release, receipts): `fast_path.choose_job` decides and the run's
tag says why. No shard is touched (nothing is re-downloaded or re-scored).

The sensor goes by receipts, not by a guess: a filed file is done when its receipt
(`removal/receipts/<request_id>.json`) says `landed` or `rejected`. While some are not, it launches
a re-derive for them (one run at a time); a run that fails leaves them pending, so a later tick
launches another (after `RETRY_AFTER_S`, or env `LAION_REMOVAL_RETRY_AFTER_S`, times 2^(failures-1), at most `RETRY_MAX_S`); the failed run
itself is alerted by `failure_alerts`. A `takedown_job` whose release step declined the incremental
path (tagged `FULL_BUILD_TAG`, not alerted) is followed at once by `publish_job`, and that request
set is re-derived by `publish_job` from then on. The cursor lists only requests that landed (or were rejected).
"""

import hashlib
import json
import time

import dagster as dg

from laion_assets.core.removal.receipts import LANDED, REJECTED, receipt_path
from laion_assets.core.removal.requests import request_id
from laion_assets.defs.jobs import publish_job, takedown_job
from laion_assets.defs.removal.fast_path import FULL_BUILD_TAG, PUBLISH_JOB, choose_job
from laion_assets.settings import load_settings
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.removal.assets import REQUESTS_DIR

REQUESTS_TAG = "laion-assets/removal-requests"
REDERIVE_TAG = "laion-assets/rederive"  # which job and why (fast_path.choose_job)
RETRY_AFTER_S = 60
RETRY_MAX_S = 3600
_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def request_states(st) -> dict[str, bool]:
    """{request_id: done} for every file under removal/requests/ (done: landed or rejected)."""
    out = {}
    for relpath in st.list(REQUESTS_DIR):
        name = relpath.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        rid = request_id(name, st.read_bytes(relpath))
        path = receipt_path(rid)
        status = json.loads(st.read_bytes(path)).get("status") if st.exists(path) else None
        out[rid] = status in (LANDED, REJECTED)
    return out


@dg.sensor(
    jobs=[takedown_job, publish_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches a re-derive while a file under removal/requests/ has no landed (or "
    "rejected) receipt: takedown_job when only removal entries changed, else publish_job; retries "
    "after a failed run, with backoff.",
)
def removal_requests_sensor(context: dg.SensorEvaluationContext, storage: StorageResource):
    """Launch a re-derive for the requests that have not landed; retry when a run failed."""
    st = storage.get()
    states = request_states(st)
    done = sorted(rid for rid, ok in states.items() if ok)
    context.update_cursor(json.dumps(done))
    pending = sorted(rid for rid, ok in states.items() if not ok)
    if not pending:
        return dg.SkipReason("every filed removal request has landed")
    tag = hashlib.sha256("|".join(pending).encode()).hexdigest()[:16]
    mine = {REQUESTS_TAG: tag}
    if context.instance.get_runs_count(dg.RunsFilter(tags=mine, statuses=_IN_FLIGHT)):
        return dg.SkipReason(f"a re-derive for {len(pending)} pending requests is in flight")
    failed = context.instance.get_run_records(dg.RunsFilter(tags=mine, statuses=_FAILED), limit=1)
    declined = context.instance.get_runs_count(dg.RunsFilter(tags={**mine, FULL_BUILD_TAG: "true"}))
    attempts = context.instance.get_runs_count(dg.RunsFilter(tags=mine, statuses=_FAILED)) - declined
    if failed and FULL_BUILD_TAG not in failed[0].dagster_run.tags:
        wait_s = min(load_settings().removal_retry_after_s * 2 ** (attempts - 1), RETRY_MAX_S)
        ended = failed[0].end_time or failed[0].update_timestamp.timestamp()
        if time.time() - ended < wait_s:
            return dg.SkipReason(f"{len(pending)} requests pending; run failed {attempts}x, retry after {wait_s} s")
    if declined:  # this request set's takedown_job declined the incremental path: the full job from now on
        job, why = PUBLISH_JOB, "the removal-only re-derive declined (its run says why)"
    else:
        job, why = choose_job(st)
    context.log.info(f"{len(pending)} pending requests: {job} ({why})")
    return dg.RunRequest(run_key=f"removal-{tag}-{job}-{attempts}", job_name=job,
                         tags={**mine, REDERIVE_TAG: f"{job}: {why}"[:200]})
