"""The failure alert sensor against a real HTTP receiver on 127.0.0.1 and a real instance: one POST
per failed check and per failed run, none on the next tick, the webhook URL never leaked."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from laion_assets.defs.automation.sensors import WEBHOOK_ENV, AlertWebhookResource, failure_alerts
from laion_assets.defs.lib.partitions import shard_partitions


class Receiver:
    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.status == 200:
                    outer.bodies.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@dg.asset(partitions_def=shard_partitions,
          check_specs=[dg.AssetCheckSpec("rows_in_range", asset="checked_shard")])
def checked_shard():
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, description="3 rows out of range",
        metadata={"failing_rows": 3})])


@dg.asset
def broken_asset():
    raise RuntimeError("S3 said no")


def tick(instance, cursor, webhook):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alert_webhook": webhook})
    result = failure_alerts(context)
    return result, getattr(result, "cursor", cursor)


def test_one_alert_per_failed_check_and_failed_run(receiver, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    webhook = AlertWebhookResource(url=dg.EnvVar(WEBHOOK_ENV), ui_base_url="http://dagster.example:3000")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", ["CC-MAIN-2024-22/00007"])
        dg.materialize([broken_asset], instance=instance, raise_on_error=False)  # before the sensor: history
        _, cursor = tick(instance, None, webhook)
        assert receiver.bodies == []  # turning the sensor on does not replay history

        dg.materialize([checked_shard], instance=instance, partition_key="CC-MAIN-2024-22/00007")
        failed = dg.materialize([broken_asset], instance=instance, raise_on_error=False)
        assert not failed.success
        _, cursor = tick(instance, cursor, webhook)
        assert len(receiver.bodies) == 2
        check_alert, run_alert = receiver.bodies
        fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
                  for f in check_alert["blocks"][1]["fields"]}
        assert fields["asset"] == "checked_shard" and fields["check"] == "rows_in_range"
        assert fields["partition"] == "CC-MAIN-2024-22/00007" and fields["severity"] == "WARN"
        assert "3 rows out of range (3 failing rows)" in check_alert["text"]
        assert "S3 said no" in json.dumps(run_alert) and "broken_asset" in json.dumps(run_alert)
        assert f"http://dagster.example:3000/runs/{failed.run_id}" in json.dumps(run_alert)

        result, cursor = tick(instance, cursor, webhook)
        assert len(receiver.bodies) == 2  # never twice for one failure
        assert receiver.url not in json.dumps(receiver.bodies) + str(cursor) + str(result)


def test_a_receiver_that_is_down_gets_the_alert_later(monkeypatch):
    down = Receiver(status=500)
    try:
        monkeypatch.setenv(WEBHOOK_ENV, down.url)
        webhook = AlertWebhookResource(url=dg.EnvVar(WEBHOOK_ENV))
        with dg.instance_for_test() as instance:
            _, cursor = tick(instance, None, webhook)
            dg.materialize([broken_asset], instance=instance, raise_on_error=False)
            _, cursor = tick(instance, cursor, webhook)
            assert down.bodies == []
            down.status = 200
            _, cursor = tick(instance, cursor, webhook)
            _, cursor = tick(instance, cursor, webhook)
            assert len(down.bodies) == 1
    finally:
        down.close()


def test_alerts_are_off_without_a_webhook():
    with dg.instance_for_test() as instance:
        _, cursor = tick(instance, None, AlertWebhookResource())
        result, _ = tick(instance, cursor, AlertWebhookResource())
        assert WEBHOOK_ENV in str(result)
