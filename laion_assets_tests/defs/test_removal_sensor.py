"""The removal-request sensor launches a re-derive exactly when a request is filed, and the docs
list exactly the published columns."""

import json
from pathlib import Path

import dagster as dg

from laion_assets.core.removal.requests import request_id
from laion_assets.core.schemas import RELEASE_SCHEMA
from laion_assets.defs.removal.sensors import removal_requests_sensor
from laion_assets.defs.lib.resources import StorageResource

DOCS = Path(__file__).resolve().parents[2] / "docs" / "release.md"


def test_sensor_requests_a_rederive_when_a_request_is_filed_until_its_receipt_lands(tmp_path: Path):
    storage = StorageResource(root=str(tmp_path))
    with dg.instance_for_test() as instance:

        def evaluate():
            with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as ctx:
                return removal_requests_sensor(ctx), json.loads(ctx.cursor)

        idle, cursor = evaluate()
        assert isinstance(idle, dg.SkipReason) and cursor == []  # nothing filed: nothing to apply
        (tmp_path / "removal" / "requests").mkdir(parents=True)
        (tmp_path / "removal" / "requests" / "dmca-1.url.txt").write_text("http://x.example/a.jpg\n")
        filed, cursor = evaluate()
        assert isinstance(filed, dg.RunRequest) and cursor == []
        again, _ = evaluate()  # no run recorded yet for that request set: the same run key (deduplicated)
        assert isinstance(again, dg.RunRequest) and again.run_key == filed.run_key
        rid = request_id("dmca-1.url.txt", b"http://x.example/a.jpg\n")
        (tmp_path / "removal" / "receipts").mkdir(parents=True)
        (tmp_path / "removal" / "receipts" / f"{rid}.json").write_text(json.dumps({"status": "landed"}))
        done, cursor = evaluate()
        assert isinstance(done, dg.SkipReason) and cursor == [rid]


def test_docs_list_every_published_column():
    text = DOCS.read_text()
    documented = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `") and line.count("|") == 4
                  and "column" not in line]
    assert documented == RELEASE_SCHEMA.names
