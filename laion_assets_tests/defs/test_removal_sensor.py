"""The removal-request sensor launches a re-derive exactly when a request is filed, and the docs
list exactly the published columns."""

from pathlib import Path

import dagster as dg

from laion_assets.core.schemas import RELEASE_SCHEMA
from laion_assets.defs.removal.sensors import removal_requests_sensor
from laion_assets.defs.lib.resources import StorageResource

DOCS = Path(__file__).resolve().parents[2] / "docs" / "release.md"


def test_sensor_requests_a_rederive_when_a_request_is_filed(tmp_path: Path):
    storage = StorageResource(root=str(tmp_path))
    with dg.instance_for_test() as instance:

        def evaluate(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage}) as ctx:
                return removal_requests_sensor(ctx), ctx.cursor

        first, cursor = evaluate(None)
        assert isinstance(first, dg.RunRequest)  # nothing seen yet: one run to apply the current lists
        again, cursor = evaluate(cursor)
        assert isinstance(again, dg.SkipReason)
        (tmp_path / "removal" / "requests").mkdir(parents=True)
        (tmp_path / "removal" / "requests" / "dmca-1.url.txt").write_text("http://x.example/a.jpg\n")
        filed, cursor = evaluate(cursor)
        assert isinstance(filed, dg.RunRequest) and filed.run_key != first.run_key

def test_docs_list_every_published_column():
    text = DOCS.read_text()
    documented = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `") and line.count("|") == 4
                  and "column" not in line]
    assert documented == RELEASE_SCHEMA.names
