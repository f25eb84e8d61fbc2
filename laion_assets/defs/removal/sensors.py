"""Re-derive every release after a removal request: `publish_job` (removal list, dbt, release,
receipts). No shard is touched (nothing is re-downloaded or re-scored).

The sensor goes by receipts, not by a guess: a filed file is done when its receipt
(`removal/receipts/<request_id>.json`) says `landed` or `rejected`. While some are not, it launches
`publish_job` for them (one run at a time); a run that fails leaves them pending, so a later tick
launches another (after `RETRY_AFTER_S`, or env `LAION_REMOVAL_RETRY_AFTER_S`, times 2^(failures-1), at most `RETRY_MAX_S`); the failed run
itself is alerted by `failure_alerts`. The cursor lists only requests that landed (or were rejected).
"""

import hashlib
import json
import time

import dagster as dg

from laion_assets.core.removal.receipts import LANDED, REJECTED, receipt_path
from laion_assets.core.removal.requests import request_id
from laion_assets.defs.jobs import publish_job
from laion_assets.settings import load_settings
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.removal.assets import REQUESTS_DIR

REQUESTS_TAG = "laion-assets/removal-requests"
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
    job=publish_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches publish_job while a file under removal/requests/ has no landed (or "
    "rejected) receipt; retries after a failed run, with backoff.",
)
def removal_requests_sensor(context: dg.SensorEvaluationContext, storage: StorageResource):
    """Launch a re-derive for the requests that have not landed; retry when a run failed."""
    states = request_states(storage.get())
    done = sorted(rid for rid, ok in states.items() if ok)
    context.update_cursor(json.dumps(done))
    pending = sorted(rid for rid, ok in states.items() if not ok)
    if not pending:
        return dg.SkipReason("every filed removal request has landed")
    tag = hashlib.sha256("|".join(pending).encode()).hexdigest()[:16]
    filters = dict(job_name=publish_job.name, tags={REQUESTS_TAG: tag})
    if context.instance.get_runs_count(dg.RunsFilter(**filters, statuses=_IN_FLIGHT)):
        return dg.SkipReason(f"a publish_job run for {len(pending)} pending requests is in flight")
    failed = context.instance.get_run_records(dg.RunsFilter(**filters, statuses=_FAILED), limit=1)
    attempts = context.instance.get_runs_count(dg.RunsFilter(**filters, statuses=_FAILED))
    if failed:
        wait_s = min(load_settings().removal_retry_after_s * 2 ** (attempts - 1), RETRY_MAX_S)
        ended = failed[0].end_time or failed[0].update_timestamp.timestamp()
        if time.time() - ended < wait_s:
            return dg.SkipReason(f"{len(pending)} requests pending; run failed {attempts}x, retry after {wait_s} s")
    return dg.RunRequest(run_key=f"removal-{tag}-{attempts}", tags={REQUESTS_TAG: tag})
