"""Every description the UI renders (assets, checks, jobs, schedules, sensors) survives markdown:
no raw `<tag>` outside code spans (markdown swallows it), no unfilled `{placeholder}`."""

import re

import dagster as dg

from laion_assets.definitions import build_definitions
from laion_assets.defs.lib.checks import check_description, ui_text
from laion_assets.core.checks import SqlCheck
from laion_assets.settings import load_settings

CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
RAW_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def problems(text: str | None) -> list[str]:
    outside = CODE_SPAN.sub("", text or "")
    return RAW_TAG.findall(outside) + PLACEHOLDER.findall(outside)


def all_descriptions(defs: dg.Definitions) -> dict[str, str | None]:
    graph = defs.resolve_asset_graph()
    out = {f"asset {k.to_user_string()}": graph.get(k).description for k in graph.get_all_asset_keys()}
    repo = defs.get_repository_def()
    for key in graph.asset_check_keys:
        out[f"check {key.asset_key.to_user_string()}.{key.name}"] = graph.get_check_spec(key).description
    for job in repo.get_all_jobs():
        out[f"job {job.name}"] = job.description
    for schedule in repo.schedule_defs:
        out[f"schedule {schedule.name}"] = schedule.description
    for sensor in repo.sensor_defs:
        out[f"sensor {sensor.name}"] = sensor.description
    return out


def test_no_description_loses_text_in_the_ui(embedded_env):
    descriptions = all_descriptions(build_definitions(load_settings()))
    bad = {name: problems(text) for name, text in descriptions.items() if problems(text)}
    assert bad == {}
    assert "`<img alt>`" in descriptions["asset image_text_pairs"]
    assert "0.05" in descriptions["check image_text_pairs.bad_record_ratio_under_threshold"]
    missing = [n for n, t in descriptions.items() if not t and not n.startswith(("job __", "asset laion"))]
    assert missing == []  # dbt tests included: they carry meta.description
    assert "crawl_manifest" in descriptions["asset clip_scores"]  # how partitions appear


def test_helpers_escape_tags_and_fill_placeholders():
    assert ui_text("one row per <img alt>, `<b>` kept") == "one row per `<img alt>`, `<b>` kept"
    check = SqlCheck(name="c", description="ratio <= {max_ratio} per <version>", sql="", params={"max_ratio": 0.05})
    assert check_description(check) == "ratio <= 0.05 per `<version>`"
    assert problems("a <= b and c > d") == []  # comparisons are not tags


def test_schedule_and_sensor_descriptions_are_plain_text(embedded_env):
    """The UI shows schedule and sensor descriptions as plain text (the schedules list, the
    automation page): backticks would show raw."""
    descriptions = all_descriptions(build_definitions(load_settings()))
    plain = {n: t for n, t in descriptions.items() if n.startswith(("schedule ", "sensor "))}
    assert set(plain) >= {"schedule shard_backfill", "schedule crawl_progress_schedule", "sensor failure_alerts"}
    assert {n: t for n, t in plain.items() if "`" in (t or "")} == {}
