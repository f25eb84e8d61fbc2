"""The sample image port (issue 19): two storage roots side by side on one host, and port 0 always a
fresh port. Real `sample_crawl` materializations, real server processes and sockets on 127.0.0.1.

Before: both roots built on the one default port (the first root's server had idled out, so the port
looked free); side by side the second root's steps were refused ("serves another sample crawl").
And `port=0` rebuilt on the port a failed build had recorded, failing the same way again.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path

import dagster as dg
import pytest

from laion_assets.core.sample.ports import PortRegistry, PortReservedError, choose_build_port
from laion_assets.core.sample.server import live_images_dir, port_in_use, recorded_port, served_token, read_token
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.sample.assets import sample_crawl
from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets_tests.conftest import free_port

SMALL = {"ops": {"sample_crawl": {"config": {"pages": 2, "images_per_page": 2, "warc_files": 1}}}}


def _server(root: Path, registry: Path, port: int | None, preferred: int) -> SampleImageServerResource:
    return SampleImageServerResource(enabled=True, root=str(root), port=port, preferred_port=preferred,
                                     port_registry_dir=str(registry), idle_exit_s=0.5)


def _build(root: Path, server: SampleImageServerResource, *, ok: bool = True) -> dg.ExecuteInProcessResult:
    result = dg.materialize([sample_crawl], resources={"storage": StorageResource(root=str(root)),
                                                       "sample_image_server": server},
                            run_config=SMALL, raise_on_error=False)
    assert result.success is ok, result
    return result


def _port(root: Path) -> int:
    return recorded_port(root / "sample-crawl")


def _get(port: int, path: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read()


def _wait_closed(port: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while port_in_use(port):
        assert time.monotonic() < deadline, f"the server on {port} did not idle out"
        time.sleep(0.1)


@contextlib.contextmanager
def _foreign_server(port: int, tmp_path: Path):
    (tmp_path / "foreign").mkdir(exist_ok=True)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "foreign"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        srv.shutdown()
        srv.server_close()


def test_two_roots_on_one_host_serve_side_by_side(tmp_path: Path):
    registry, preferred = tmp_path / "ports", free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    server_a, server_b = _server(a, registry, None, preferred), _server(b, registry, None, preferred)
    _build(a, server_a)
    assert _port(a) == preferred  # one root alone: the preferred port, the sample's bytes as everywhere
    _wait_closed(preferred)  # a's server idled out: the port looks free, yet it is a's
    _build(b, server_b)
    assert _port(b) != _port(a)
    # a rebuild of an unset port keeps the root's own port (no needless new sample)
    assert _build(a, server_a).asset_materializations_for_node("sample_crawl")[0].metadata[
        "reused_existing"].value is True
    assert _port(a) == preferred
    with server_a.lease() as la, server_b.lease() as lb:  # both servers up at once, each its own root's
        for root, lease in ((a, la), (b, lb)):
            images = live_images_dir(root / "sample-crawl")
            name = sorted(p.name for p in (images / "img").iterdir())[0]
            assert _get(lease.port, f"/img/{name}") == (images / "img" / name).read_bytes()
            assert served_token(lease.port) == read_token(images)
        assert la.port != lb.port


def test_an_explicit_port_reserved_by_another_root_fails_at_build(tmp_path: Path):
    registry, port = tmp_path / "ports", free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    _build(a, _server(a, registry, port, port))
    _wait_closed(port)
    failed = _build(b, _server(b, registry, port, port), ok=False)
    text = str(failed.all_events)
    assert f"LAION_SAMPLE_IMAGE_PORT={port}: reserved by the sample crawl of {a}" in text
    assert not (b / "sample-crawl").exists() or recorded_port(b / "sample-crawl") != port
    _build(b, _server(b, registry, None, port))  # unset: b gets a port of its own
    assert _port(b) not in (None, port)


def test_port_zero_never_rebuilds_on_the_port_a_failed_build_recorded(tmp_path: Path):
    registry, root = tmp_path / "ports", tmp_path / "r"
    taken = free_port()
    with _foreign_server(taken, tmp_path):  # another program holds the port: the build's check fails
        _build(root, _server(root, registry, taken, taken), ok=False)
        assert _port(root) == taken  # what the failed build left recorded
        zero = _server(root, registry, 0, taken)
        _build(root, zero)
        fresh = _port(root)
        assert fresh != taken
        with zero.lease() as lease:
            assert lease.port == fresh and served_token(fresh) == read_token(live_images_dir(root / "sample-crawl"))
        _build(root, zero)  # 0 again: again a fresh port, never the recorded one
        assert _port(root) not in (taken, fresh)


def test_a_reservation_lasts_only_while_its_sample_records_the_port(tmp_path: Path):
    reg = PortRegistry(tmp_path / "ports")
    d = tmp_path / "s"
    (d / "images").mkdir(parents=True)
    port = free_port()
    (d / "spec.json").write_text(f'{{"image_base_url": "http://127.0.0.1:{port}"}}')
    reg.reserve(port, "file:///root-a/sample-crawl", d)
    with reg.locked():
        with pytest.raises(PortReservedError, match="root-a"):
            choose_build_port(port, "file:///root-b/sample-crawl", None, reg)
        assert choose_build_port(None, "file:///root-b/sample-crawl", None, reg, preferred=port) != port
        assert choose_build_port(port, "file:///root-a/sample-crawl", port, reg) == port  # its own
    (d / "spec.json").unlink()  # the root is gone: the port is free for anyone
    assert reg.live(port) is None and not (tmp_path / "ports" / f"{port}.json").exists()
    with reg.locked():
        assert choose_build_port(port, "file:///root-b/sample-crawl", None, reg) == port
