"""Re-derive every release after a removal change: removal list, dbt, release. No shard is touched
(nothing is re-downloaded or re-scored); each affected variant gets a new version and a diff."""

import hashlib

import dagster as dg

from laion_assets.defs.jobs import publish_job
from laion_assets.defs.removal.assets import REQUESTS_DIR
from laion_assets.defs.lib.resources import StorageResource


def requests_fingerprint(st) -> str:
    """Names and content hashes of the filed request files (small): changes when one is filed."""
    return "|".join(
        f"{relpath}:{hashlib.sha256(st.read_bytes(relpath)).hexdigest()[:16]}" for relpath in st.list(REQUESTS_DIR)
    ) or "none"


@dg.sensor(
    job=publish_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches `publish_job` when a file under `removal/requests/` is filed or changed.",
)
def removal_requests_sensor(context: dg.SensorEvaluationContext, storage: StorageResource):
    """Launch a re-derive when the files under removal/requests/ change."""
    fingerprint = requests_fingerprint(storage.get())
    if context.cursor == fingerprint:
        return dg.SkipReason("no new removal request")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key="removal-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:16])
