"""Deterministic errors fail at once with the real cause, never 3 retries with minutes of backoff."""

import time
from pathlib import Path

import dagster as dg

from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings

from .test_extract_asset import _warc


def _run(instance, defs, key):
    return defs.resolve_job_def("shard_job").execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False, op_selection=["image_text_pairs"])


def test_a_missing_warc_fails_at_once_naming_the_file(embedded_env, tmp_path: Path):
    src = tmp_path / "warcs"
    src.mkdir()
    _warc(src / "a.warc.gz", pages=2, garbage=0)
    defs = build_definitions(load_settings())
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        assert defs.resolve_job_def("crawl_job").execute_in_process(
            instance=instance, op_selection=["crawl_manifest"],
            run_config={"ops": {"crawl_manifest": {"config": {"crawl": "GONE", "source_dir": str(src)}}}}).success
        (src / "a.warc.gz").unlink()  # the file vanished after the manifest listed it
        started = time.monotonic()
        run = _run(instance, defs, "GONE/00000")
        assert not run.success and time.monotonic() - started < 25  # a retry alone waits 30 s
        types = [e.event_type_value for e in run.all_events]
        assert "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
        failure = next(e for e in run.all_events if e.is_step_failure)
        message = failure.event_specific_data.error.message
        assert "FileNotFoundError" in message and "a.warc.gz" in message

