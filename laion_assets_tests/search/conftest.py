"""The search service over the session's published sample (real pipeline output, tiny model)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from laion_assets.core.search.build import publish_index, release_variants
from laion_assets.core.search.encode import QueryEncoder
from laion_assets.core.search.service import SearchService
from laion_assets.core.storage.local import LocalStorage
from laion_assets.weights import TINY_CHECKPOINT, TINY_MODEL_NAME
from laion_assets.search.server import serve


@pytest.fixture(scope="session")
def tiny_encoder() -> QueryEncoder:
    return QueryEncoder(TINY_MODEL_NAME, str(TINY_CHECKPOINT))


@dataclass
class Served:
    root: Path
    st: LocalStorage
    service: SearchService
    base: str  # http://127.0.0.1:<port>

    def get(self, path: str) -> tuple[int, bytes, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def get_json(self, path: str):
        status, body, _ = self.get(path)
        return status, json.loads(body)

    def post(self, path: str, body: bytes, ctype: str) -> tuple[int, object]:
        req = urllib.request.Request(self.base + path, data=body, method="POST", headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@pytest.fixture
def served(published_sample, tiny_encoder):
    """Indices built for every published variant, the service loaded, the server on a free port."""
    st = LocalStorage(published_sample.root)
    for variant, version in release_variants(st).items():
        publish_index(st, variant, version)
    service = SearchService(st, tiny_encoder)
    httpd = serve(service, "127.0.0.1", 0)
    try:
        yield Served(published_sample.root, st, service, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
