"""dbt reads its paths and rules only as vars that Python declares once (core/storage/layout.py,
core/release/rules.py): sources.yml names exactly the layout's globs, no model or test spells a rule's
value or a default for it, and every var dbt reads is one `dbt_vars` passes."""

import re

import yaml

from laion_assets.core.release.rules import PLACEHOLDER_MIN_URLS, dbt_vars
from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY
from laion_assets.core.storage.layout import REMOVAL_ENTRIES, SHARD_GLOBS, dbt_sources
from laion_assets.defs.dbt.project import DBT_DIR

_VAR = re.compile(r"var\(\s*'(\w+)'\s*(,)?")


def _sql_files():
    return [p for d in ("models", "tests", "macros") for p in (DBT_DIR / d).rglob("*.sql")]


def test_sources_read_the_layouts_globs():
    sources = yaml.safe_load((DBT_DIR / "models" / "sources.yml").read_text())["sources"][0]["tables"]
    locations = {t["name"]: t["meta"]["external_location"] for t in sources}
    used = {m for loc in locations.values() for m in _VAR.findall(loc)}
    assert {name for name, _ in used} == set(dbt_sources("/r"))
    assert "env_var" not in (DBT_DIR / "models" / "sources.yml").read_text()
    assert dbt_sources("s3://b/p/") == {**{k: f"s3://b/p/{g}" for k, g in SHARD_GLOBS.items()},
                                        "removal_entries": f"s3://b/p/{REMOVAL_ENTRIES}"}


def test_every_var_is_passed_and_none_has_a_default():
    passed = set(dbt_vars("/r"))
    for path in [*_sql_files(), DBT_DIR / "models" / "sources.yml"]:
        for name, default in _VAR.findall(path.read_text()):
            assert name in passed, f"{path.name}: var('{name}') is not passed by dbt_vars"
            assert not default, f"{path.name}: var('{name}') has a default (a second definition)"
    assert {"placeholder_min_urls": PLACEHOLDER_MIN_URLS, "pdq_max_distance": PDQ_MAX_DISTANCE,
            "pdq_min_quality": PDQ_MIN_QUALITY}.items() <= dbt_vars("/r").items()


def test_no_sql_spells_a_rule_value():
    for path in _sql_files():
        sql = re.sub(r"--[^\n]*", "", path.read_text())
        for rule, value in (("placeholder", PLACEHOLDER_MIN_URLS), ("pdq_quality", PDQ_MIN_QUALITY),
                            ("pdq_distance", PDQ_MAX_DISTANCE)):
            assert not re.search(rf"(>=|<=|>|<)\s*{value}\b", sql), f"{path.name}: {rule} value {value} as a literal"
