"""Alerts: every failed asset check (ERROR or WARN, blocking or not) and every failed run becomes one
Slack-compatible webhook POST.

Alert policies are Dagster+ only, and `run_failure_sensor` never sees non-blocking check failures,
so one cursor-based sensor walks the runs that finished since its last tick (by update time, which
works on SQLite's run-sharded event log and on Postgres alike) and reads each run's
ASSET_CHECK_EVALUATION records and, for a failed run, its step failures. The cursor records every
alert it POSTed (a run is done once all of its alerts went out), so a failure is alerted once and a
receiver that is down gets it on a later tick. The first tick starts now: turning the sensor on
does not replay history. The webhook URL is a secret (`LAION_ALERT_WEBHOOK_URL`, an `EnvVar`): it is
never logged, put in metadata or in an error.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from laion_assets.core.alerts.webhook import AlertDeliveryError, post_json
from laion_assets.settings import ALERT_WEBHOOK_ENV as WEBHOOK_ENV
from laion_assets.defs.removal.fast_path import FULL_BUILD_TAG

MAX_RUNS_PER_TICK = 50
RECENT_RUNS_KEPT = 2000  # finished runs remembered, so a run updated again is not alerted twice
CLOCK_SLACK_S = 5.0  # runs updated this close to the cursor are re-read (and skipped if done)
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts go. `url` empty = alerts off (the sensor skips and says why)."""

    url: str = ""
    ui_base_url: str = "http://localhost:3000"
    timeout_s: float = 10.0

    def post(self, payload: dict[str, Any]) -> None:
        """One deadline (`timeout_s`) for the whole POST; any failure is an AlertDeliveryError
        whose text never holds the URL (see `core/alerts.py`)."""
        try:
            post_json(self.url, payload, timeout_s=self.timeout_s, setting=WEBHOOK_ENV)
        except AlertDeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever else fails, the sensor must save its cursor
            raise AlertDeliveryError(f"alert webhook ({WEBHOOK_ENV}) did not accept the alert: "
                                     f"{type(exc).__name__}") from None

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"


@dataclass(frozen=True)
class Alert:
    title: str
    fields: dict[str, str]
    message: str
    run_link: str

    def payload(self) -> dict[str, Any]:
        """Slack's incoming-webhook format: `text` for notifications, blocks for the layout."""
        return {
            "text": f"{self.title}: {self.message}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in self.fields.items()
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.message[:2900]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.run_link}|Open the run in Dagster>"}},
            ],
        }


def check_failure_alert(record: Any, webhook: AlertWebhookResource, run_partition: str | None = None) -> Alert | None:
    evaluation = record.event_log_entry.dagster_event.event_specific_data
    if evaluation.passed:
        return None
    failing = evaluation.metadata.get("failing_rows")
    detail = f" ({failing.value} failing rows)" if failing is not None else ""
    keys = evaluation.metadata.get("failing_keys")
    if keys is not None and keys.value:
        detail += "; failing rows' keys: " + ", ".join(f"`{k}`" for k in keys.value)
    severity = evaluation.severity.value if evaluation.severity else "WARN"
    return Alert(
        title=f"Asset check failed ({severity}): {evaluation.asset_key.to_user_string()}.{evaluation.check_name}",
        fields={
            "asset": evaluation.asset_key.to_user_string(),
            "partition": evaluation.partition or run_partition or "-",
            "check": evaluation.check_name,
            "severity": severity + (", blocking" if evaluation.blocking else ""),
        },
        message=(evaluation.description or "check failed") + detail,
        run_link=webhook.run_link(record.event_log_entry.run_id),
    )


def _root_message(error: Any) -> str:
    """The innermost cause (the user's exception), not Dagster's "error while executing op" wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def run_failure_alert(record: Any, instance: dg.DagsterInstance, webhook: AlertWebhookResource) -> Alert:
    run_id = record.event_log_entry.run_id
    run = instance.get_run_by_id(run_id)
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    steps = [f.event_log_entry.step_key for f in failures]
    errors = [
        f"`{f.event_log_entry.step_key}`: {_root_message(f.event_log_entry.dagster_event.event_specific_data.error)}"
        for f in failures
        if getattr(f.event_log_entry.dagster_event.event_specific_data, "error", None)
    ]
    assets = sorted(k.to_user_string() for k in (run.asset_selection or [])) if run else []
    return Alert(
        title=f"Run failed: {run.job_name if run else run_id}",
        fields={
            "job": run.job_name if run else "-",
            "asset": ", ".join(assets) or "-",
            "partition": (run.tags.get("dagster/partition") if run else None) or "-",
            "check": "-",
            "failed steps": ", ".join(steps) or "-",
        },
        message="\n".join(errors) or (record.event_log_entry.message or "run failed"),
        run_link=webhook.run_link(run_id),
    )


def run_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun, webhook: AlertWebhookResource) -> list[tuple[str, Alert]]:
    """(alert id, alert) for each failed check evaluation of the run, then the run's own failure."""
    out: list[tuple[str, Alert]] = []
    run_id, status = run.run_id, run.status
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        alert = check_failure_alert(record, webhook, run.tags.get("dagster/partition"))
        if alert is not None:
            out.append((f"{run_id}:{record.storage_id}", alert))
    # A takedown_job whose release step declined the incremental path failed by design: its caller
    # runs publish_job next (defs/removal/fast_path.py), whose failure would be alerted.
    if status == dg.DagsterRunStatus.FAILURE and run.tags.get(FULL_BUILD_TAG) != "true":
        failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        if failure:
            out.append((f"{run_id}:run", run_failure_alert(failure[-1], instance, webhook)))
    return out


def _finished_since(instance: dg.DagsterInstance, after: float, limit: int) -> list:
    """Finished runs last updated after `after` (less a clock slack), oldest first."""
    since = datetime.fromtimestamp(after - CLOCK_SLACK_S, tz=timezone.utc)
    return list(instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, updated_after=since), order_by="update_timestamp", ascending=True,
        limit=limit,
    ))


@dg.sensor(
    name="failure_alerts",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one Slack-compatible alert per failed asset check (ERROR or WARN) and per "
    f"failed run to the webhook in {WEBHOOK_ENV}; off while it is unset.",
)
def failure_alerts(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource):
    if not context.cursor:
        now = time.time()
        history = [r.dagster_run.run_id for r in _finished_since(context.instance, now, limit=RECENT_RUNS_KEPT)]
        start = {"after": now, "done": history, "sent": []}
        return dg.SensorResult(cursor=json.dumps(start), skip_reason="alerts start from now")
    if not alert_webhook.url:
        return dg.SkipReason(f"{WEBHOOK_ENV} is not set: alerts are off")
    cursor = json.loads(context.cursor)
    done, sent_ids = list(cursor["done"]), set(cursor["sent"])
    records = _finished_since(context.instance, cursor["after"], limit=MAX_RUNS_PER_TICK + len(done))
    sent = 0
    try:
        for record in records:
            run = record.dagster_run
            if run.run_id in done:
                continue
            for alert_id, alert in run_alerts(context.instance, run, alert_webhook):
                if alert_id not in sent_ids:
                    alert_webhook.post(alert.payload())
                    sent_ids.add(alert_id)
                    sent += 1
            done.append(run.run_id)
            sent_ids = {a for a in sent_ids if not a.startswith(run.run_id + ":")}
            cursor["after"] = max(cursor["after"], record.update_timestamp.timestamp())
    except AlertDeliveryError as exc:
        context.log.warning(f"{exc}; {sent} alerts sent this tick, the rest retried on the next")
    cursor.update(done=done[-RECENT_RUNS_KEPT:], sent=sorted(sent_ids))
    return dg.SensorResult(cursor=json.dumps(cursor), skip_reason=None if sent else "no new failures")


publish_automation = dg.AutomationConditionSensorDefinition(
    "publish_automation",
    target=dg.AssetSelection.groups("publish", "removal"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    use_user_code_server=True,  # the gate's custom conditions (shard_gate.py) run in the code server
    description="Evaluates the publish group's automation condition: dbt models and the release run "
    "once every registered shard is materialized, none is in progress, and every blocking check passed.",
)
