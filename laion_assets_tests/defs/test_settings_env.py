"""Every environment read goes through laion_assets/settings.py, and every variable it reads is documented."""

import re

from laion_assets_tests.conftest import REPO

# Modules that hand the environment on rather than read a setting: dbt's subprocess environment,
# the demo's own Dagster home, the package's OpenBLAS default (set before numpy loads), and the test
# scaffolding.
PASS_THROUGH = {"laion_assets/defs/dbt/project.py", "laion_assets/defs/dbt/assets.py", "laion_assets/demo.py",
                "laion_assets/__init__.py"}


def test_only_settings_reads_the_environment():
    readers = set()
    for path in (REPO / "laion_assets").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("laion_assets/testing/") or rel == "laion_assets/settings.py":
            continue
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text()):
            readers.add(rel)
    assert readers <= PASS_THROUGH, readers - PASS_THROUGH


def test_every_variable_settings_reads_is_in_the_readme():
    settings = (REPO / "laion_assets" / "settings.py").read_text()
    names = set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Z0-9_]+)"', settings))
    names |= set(re.findall(r'"((?:LAION|AWS)_[A-Z0-9_]+)"', settings))
    readme = (REPO / "README.md").read_text()
    assert len(names) > 20
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
