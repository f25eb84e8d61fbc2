"""Issue 18 end to end (real Dagster instance, real dbt and DuckDB): requests filed in other spellings
of published URLs land; a malformed file, an empty one and two files with one stem sit beside them
and fail only themselves (or nothing); the request sensor launches `publish_job`, sees the run fail,
retries, and stops once every request has a landed or rejected receipt."""

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.definitions import build_definitions
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.removal.sensors import REQUESTS_TAG, removal_requests_sensor
from laion_assets.runner import failed_checks
from laion_assets.settings import load_settings

pytestmark = pytest.mark.e2e


def _rows(release_dir: Path) -> dict[int, dict]:
    return {r["SAMPLE_ID"]: r for r in pq.read_table(sorted(release_dir.glob("part-*.parquet"))).to_pylist()}


def _respell(url: str, host: str) -> str:
    """The same URL in another spelling: upper-case scheme, another IPv4 form of 127.0.0.1, the first
    path character percent-encoded, a fragment."""
    rest = url.split("://", 1)[1]
    port, path = rest.split("/", 1)[0].rsplit(":", 1)[1], rest.split("/", 1)[1]
    return f"HTTP://{host}:{port}/%{ord(path[0]):02x}{path[1:]}#x"


def test_requests_land_bad_files_fail_alone_and_the_sensor_retries(published_sample, monkeypatch):
    root, first = published_sample.root, published_sample.first
    monkeypatch.setenv("LAION_REMOVAL_RETRY_AFTER_S", "0")  # retry on the next tick (default 60 s, doubling)
    defs = build_definitions(load_settings())
    before = _rows(first.release_dir)
    # Rows published in every variant (which rows the safe variant keeps depends on the machine's
    # floating point), so that each request removes at least one row from each.
    safe = set(_rows(next((root / "releases" / "sample-safe").glob("r-*"))))
    a, b, c, d, e = sorted((r for r in before.values() if r["SAMPLE_ID"] in safe), key=lambda r: r["SAMPLE_ID"])[:5]
    assert a["URL"].startswith("http://127.0.0.1:")
    requests = root / "removal" / "requests"
    requests.mkdir(parents=True)
    (requests / "dmca-1.url.txt").write_text(_respell(a["URL"], "0x7f.1") + "\n")
    (requests / "dmca-2.url_prefix.txt").write_text(_respell(b["URL"], "2130706433") + "\n")
    (requests / "broken.csv").write_text(f'kind,value\nurl,"{c["URL"]}\nurl,{c["URL"]}\n')  # unclosed quote
    (requests / "empty.csv").write_text("")
    (requests / "iwf.csv").write_text(f"kind,value\nurl_sha256,{hashlib.sha256(d['URL'].encode()).hexdigest()}\n")
    pq.write_table(pa.table({"kind": ["image_sha256"], "value": [e["sha256"]]}), requests / "iwf.parquet")
    (requests / "nothing.url.txt").write_text("http://127.0.0.1:1/never-published.jpg\n")
    (requests / "ips.domain.txt").write_text("0.1\n")  # the address 0.0.0.1: never 127.0.0.1 by suffix

    storage = StorageResource(root=str(root))
    with dg.instance_for_test(temp_dir=str(published_sample.home)) as instance:
        job = defs.resolve_job_def("publish_job")

        def tick():
            with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as ctx:
                return removal_requests_sensor(ctx), json.loads(ctx.cursor)

        request, landed = tick()
        assert isinstance(request, dg.RunRequest) and landed == [] and REQUESTS_TAG in request.tags
        # The run fails (the shards' kept pairs are not readable): nothing lands, the sensor retries.
        filtered = root / "SAMPLE-CRAWL" / "filtered"
        shutil.move(filtered, filtered.with_name("filtered.away"))
        failed = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
        assert not failed.success
        retry, done = tick()
        assert isinstance(retry, dg.RunRequest) and retry.run_key != request.run_key
        receipts = {json.loads(p.read_text())["file"]: json.loads(p.read_text())
                    for p in (root / "removal" / "receipts").glob("*.json")}
        assert {f for f, r in receipts.items() if r["status"] == "rejected"} == {"broken.csv", "empty.csv"}
        assert {r["status"] for f, r in receipts.items() if f not in ("broken.csv", "empty.csv")} == {"pending"}
        assert sorted(done) == sorted(receipts[f]["request_id"] for f in ("broken.csv", "empty.csv"))

        shutil.move(filtered.with_name("filtered.away"), filtered)
        landed_run = job.execute_in_process(instance=instance, tags=retry.tags, raise_on_error=False)
        # Every blocking check passed; the one failing check is the (WARN, alerted) rejected requests.
        assert landed_run.success
        assert failed_checks(instance, [landed_run.run_id]) == ["removal_list:removal_requests_accepted"]
        last, done = tick()
        assert isinstance(last, dg.SkipReason) and len(done) == 8

    published = landed_run.asset_materializations_for_node("published_dataset")[-1].metadata
    new_dir, versions = Path(published["path"].value), {v: m["version"] for v, m in published["variants"].value.items()}
    after = _rows(new_dir)
    assert set(before) - set(after) >= {a["SAMPLE_ID"], b["SAMPLE_ID"], d["SAMPLE_ID"], e["SAMPLE_ID"]}
    assert c["SAMPLE_ID"] in after  # the broken file applied nothing
    receipts = {json.loads(p.read_text())["file"]: json.loads(p.read_text())
                for p in (root / "removal" / "receipts").glob("*.json")}
    assert len(receipts) == 8
    for f in ("dmca-1.url.txt", "dmca-2.url_prefix.txt", "iwf.csv", "iwf.parquet"):
        assert receipts[f]["status"] == "landed" and receipts[f]["versions"] == versions, f
        assert min(receipts[f]["rows_removed"].values()) >= 1 and receipts[f]["landed_at"], f
    for f in ("nothing.url.txt", "ips.domain.txt"):  # matched nothing: a receipt all the same
        assert receipts[f]["status"] == "landed" and set(receipts[f]["rows_removed"].values()) == {0}, f
    assert receipts["broken.csv"]["reason"].startswith("line 2:") and receipts["empty.csv"]["reason"] == "empty file"
    table = pq.read_table(root / "removal" / "receipts.parquet")
    assert set(table.column("file").to_pylist()) == set(receipts)
    assert c["URL"] not in json.dumps(receipts)  # receipts never carry values
    # The new version's card and manifest list every request it was built with, by its receipt id.
    card = (new_dir / "README.md").read_text()
    listed = {r["file"]: r for r in json.loads((new_dir / "manifest.json").read_text())["removal"]["requests"]}
    assert set(listed) == set(receipts)
    for f, r in receipts.items():
        assert f"`{r['request_id']}`" in card and listed[f]["request_id"] == r["request_id"], f
    assert listed["broken.csv"]["status"] == "rejected" and listed["broken.csv"]["rows_removed"] == 0
    assert listed["dmca-1.url.txt"]["rows_removed"] >= 1 and listed["nothing.url.txt"]["rows_removed"] == 0
    assert c["URL"] not in card
