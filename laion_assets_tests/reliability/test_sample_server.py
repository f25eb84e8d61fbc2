"""The sample crawl's image server is owned by no step: leased, verified by content, never lost.

Reproduces issue 11's finding (a second process reused whatever listened on the port and lost it when
the first step ended: one of two parallel shards saw 0 of 27 images) with real processes and sockets.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from laion_assets.core.sample.server import (
    SampleServerError,
    lease_sample_server,
    live_images_dir,
    port_in_use,
    served_token,
    write_token,
)
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.conftest import REPO, free_port

_HOLDER = """
import sys, pathlib
from laion_assets.core.sample.server import lease_sample_server
d = pathlib.Path(sys.argv[1])
with lease_sample_server(d, int(sys.argv[2]), d / "lease", idle_exit_s=0.5) as lease:
    print("started" if lease.started_server else "verified", flush=True)
    sys.stdin.readline()
"""


def _sample_dir(tmp_path: Path, name: str = "s") -> Path:
    d = tmp_path / name
    (d / "images" / "img").mkdir(parents=True)
    (d / "images" / "img" / "a.jpg").write_bytes(b"\xff\xd8" + os.urandom(2000))
    write_token(d / "images")
    return d


def _get(port: int, path: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read()


def _wait_closed(port: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not port_in_use(port):
            return True
        time.sleep(0.1)
    return False


def _holder(d: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(d), str(port)], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    return p


@pytest.mark.parametrize("how_the_starter_ends", ["exits", "sigkill"])
def test_server_outlives_the_process_that_started_it(tmp_path: Path, how_the_starter_ends: str):
    d, port = _sample_dir(tmp_path), free_port()
    image = (d / "images" / "img" / "a.jpg").read_bytes()
    starter = _holder(d, port)
    with lease_sample_server(d, port, d / "lease", idle_exit_s=0.5) as mine:
        assert not mine.started_server  # verified the starter's server by its token
        if how_the_starter_ends == "exits":
            starter.stdin.write("\n")
            starter.stdin.flush()
        else:
            starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        for _ in range(8):  # well past idle_exit_s: our lease keeps it up
            assert _get(port, "/img/a.jpg") == image
            time.sleep(0.2)
    assert _wait_closed(port, within_s=5), "the server did not exit once no one leased it"


def test_a_foreign_server_on_the_port_is_refused(tmp_path: Path):
    d, port = _sample_dir(tmp_path), free_port()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.html").write_text("not the sample")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "other"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SampleServerError, match=rf"port {port} is in use by another program"):
            with lease_sample_server(d, port, d / "lease", start_timeout_s=1.0):
                pass
    finally:
        server.shutdown()
        server.server_close()


def test_another_roots_sample_on_the_same_port_is_refused(tmp_path: Path):
    a, b, port = _sample_dir(tmp_path, "a"), _sample_dir(tmp_path, "b"), free_port()
    with lease_sample_server(a, port, a / "lease", idle_exit_s=0.5):
        with pytest.raises(SampleServerError, match="serves another sample crawl"):
            with lease_sample_server(b, port, b / "lease"):
                pass
    assert _wait_closed(port, within_s=5)
    assert served_token(port) is None


def test_two_shards_in_parallel_processes_get_all_their_images(embedded_env, tmp_path: Path):
    root = Path(embedded_env["LAION_ASSETS_ROOT"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        crawl = build_definitions(load_settings()).resolve_job_def("crawl_job")
        assert crawl.execute_in_process(instance=instance).success
        keys = sorted(instance.get_dynamic_partitions("shards"))
    assert len(keys) == 2
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen([sys.executable, "-m", "laion_assets_tests.reliability._shard_worker",
                          "--light", "--partition", key], env=env, cwd=tmp_path)
        for key in keys
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    images = live_images_dir(root / "sample-crawl")
    for key in keys:
        crawl_name, shard = key.split("/")
        status = pq.read_table(root / crawl_name / "images" / f"{shard}.parquet").to_pylist()
        served = [r for r in status if (images / r["url"].split("/", 3)[3]).is_file()]
        assert served and all(r["status"] == "ok" for r in served), key
        assert all(r["status"] != "ok" for r in status if r not in served)
