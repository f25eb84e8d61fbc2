"""The alert webhook against real misbehaving receivers on 127.0.0.1: one deadline for the whole POST,
every failure a delivery error (so the sensor saves its cursor), the URL never in any text."""

import json
import socket
import threading
import time

import dagster as dg
import pytest

from laion_assets.core.alerts.webhook import AlertDeliveryError, post_json
from laion_assets.defs.automation.sensors import WEBHOOK_ENV, AlertWebhookResource, failure_alerts

SECRET = "T000/B000/secret-token-xyz"


class RawReceiver:
    """A TCP server that reads the request, then runs `answer(conn)`: whatever a bad receiver does."""

    def __init__(self, answer):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/services/{SECRET}"
        self.answer = answer
        self.requests = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0]
                         .split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            try:
                self.answer(conn, self.stop)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()


def trickle(conn, stop):
    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
        if stop.wait(2.0):  # one header byte every 2 s: each recv alone is within any timeout
            return
        conn.sendall(bytes([b]))


def trickle_fast(conn, stop):  # the per-recv case at test speed: a byte every 0.2 s, timeout 1 s
    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([b]))


def malformed(conn, stop):
    conn.sendall(b"HTTP/1.1 2OO " + SECRET.encode() + b"\r\n\r\n")


def garbage(conn, stop):
    conn.sendall(b"\x00\xff hello\r\n\r\n")


def close_at_once(conn, stop):
    pass


def huge_head(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 100_000 + b"\r\n\r\n")


def ok(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def status_500(conn, stop):
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def receivers():
    made = []

    def make(answer):
        r = RawReceiver(answer)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def test_a_trickling_receiver_cannot_hold_the_post_past_its_timeout(receivers):
    r = receivers(trickle_fast)
    started = time.monotonic()
    with pytest.raises(AlertDeliveryError) as err:
        post_json(r.url, {"text": "x"}, timeout_s=1.0, setting=WEBHOOK_ENV)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed  # one deadline, not one per recv (which would be ~200 s)
    assert "timeout" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.parametrize("answer, why", [
    (malformed, "malformed HTTP status line"), (garbage, "malformed HTTP status line"),
    (close_at_once, "closed without an answer"), (huge_head, "response head over"),
    (status_500, "HTTP 500"),
])
def test_every_bad_answer_is_a_delivery_error_without_the_url(receivers, answer, why):
    r = receivers(answer)
    with pytest.raises(AlertDeliveryError) as err:
        post_json(r.url, {"text": "x"}, timeout_s=3.0, setting=WEBHOOK_ENV)
    text = str(err.value) + repr(err.value) + repr(err.value.__cause__) + repr(err.value.__context__)
    assert why in str(err.value) and SECRET not in text and str(r.port) not in text


@pytest.mark.parametrize("url", [
    f"hooks.slack.com/services/{SECRET}",  # no scheme
    f"ftp://127.0.0.1/{SECRET}",
    f"http://127.0.0.1/{SECRET}\r\nX-Injected: 1",  # control characters
    f"http://127.0.0.1/ {SECRET}",
    f"http://127.0.0.1:99999/{SECRET}",  # bad port
    f"http:///{SECRET}",  # no host
    "",
])
def test_bad_urls_fail_before_any_request_without_the_secret(url):
    with pytest.raises(AlertDeliveryError) as err:
        post_json(url, {"text": "x"}, timeout_s=1.0, setting=WEBHOOK_ENV)
    text = str(err.value) + repr(err.value) + repr(err.value.__cause__) + repr(err.value.__context__)
    assert WEBHOOK_ENV in str(err.value) and SECRET not in text


def test_a_good_receiver_gets_the_post(receivers):
    r = receivers(ok)
    assert post_json(r.url, {"text": "x"}, timeout_s=3.0) == 200
    assert r.requests == 1


@dg.asset
def broken_for_alerts():
    raise RuntimeError("disk full")


def _tick(instance, cursor, webhook):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alert_webhook": webhook})
    result = failure_alerts(context)
    return result, getattr(result, "cursor", cursor)


@pytest.mark.parametrize("answer", [malformed, trickle])
def test_the_sensor_saves_its_cursor_whatever_the_receiver_does(receivers, answer, monkeypatch):
    """A malformed status line used to escape as BadStatusLine (tick failed, cursor lost, alerts
    re-sent); a trickling receiver held the tick for ever. Both: a warning, the cursor saved, the
    alert retried on the next tick, within the resource's timeout."""
    bad = receivers(answer)
    monkeypatch.setenv(WEBHOOK_ENV, bad.url)
    webhook = AlertWebhookResource(url=dg.EnvVar(WEBHOOK_ENV), timeout_s=2.5)
    with dg.instance_for_test() as instance:
        _, cursor = _tick(instance, None, webhook)
        dg.materialize([broken_for_alerts], instance=instance, raise_on_error=False)
        started = time.monotonic()
        result, cursor2 = _tick(instance, cursor, webhook)
        assert time.monotonic() - started < 6.0
        assert isinstance(result, dg.SensorResult) and cursor2 is not None
        assert json.loads(cursor2)["done"] == json.loads(cursor)["done"]  # not done: retried later
        assert SECRET not in str(cursor2) + str(result)
        good = receivers(ok)
        monkeypatch.setenv(WEBHOOK_ENV, good.url)
        _, cursor3 = _tick(instance, cursor2, AlertWebhookResource(url=dg.EnvVar(WEBHOOK_ENV)))
        assert good.requests == 1 and len(json.loads(cursor3)["done"]) == 1


def test_a_receiver_trickling_its_tls_handshake_ends_at_the_deadline():
    """An https receiver that answers the ClientHello with a TLS record header announcing 16 KiB and
    then one byte every 0.2 s (the record never completes): the call ends at its one deadline, as a
    delivery error without the URL. (CPython's blocking handshake applies the socket timeout to the
    whole handshake, not per read; this pins that the remaining deadline is what it gets.)"""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")  # handshake record, 16384 bytes to come
            while not stop.is_set():
                try:
                    conn.sendall(b"\x02")
                except OSError:
                    return
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    url = f"https://127.0.0.1:{port}/services/{SECRET}"
    t0 = time.monotonic()
    try:
        with pytest.raises(AlertDeliveryError) as err:
            post_json(url, {"text": "x"}, timeout_s=1.0)
    finally:
        stop.set()
        srv.close()
    assert time.monotonic() - t0 < 2.5
    assert SECRET not in str(err.value) and "127.0.0.1" not in str(err.value)
