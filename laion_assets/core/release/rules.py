"""The release's tunable rules, declared once: Python (checks, card) reads them here and dbt gets
them as vars (`dbt_vars`), so the SQL, the checks and the card can never say different things.

`laion_assets_tests/dbt/test_dbt_vars.py` checks that no model or test in `dbt/` spells these values
as literals and that every `var()` dbt reads is one `dbt_vars` passes.
"""

from __future__ import annotations

from typing import Any

from laion_assets.core.removal.entries import PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY
from laion_assets.core.storage.layout import dbt_sources

# An image (sha256 of its bytes) behind at least this many distinct URLs is a placeholder
# ("image not found", 1x1 stand-ins) and never published (dbt/models/placeholder_images.sql).
PLACEHOLDER_MIN_URLS = 5


def dbt_vars(root_uri: str) -> dict[str, Any]:
    """Every var the dbt project reads: the source globs under `root_uri` and the rules above."""
    return {
        **dbt_sources(root_uri),
        "placeholder_min_urls": PLACEHOLDER_MIN_URLS,
        "pdq_max_distance": PDQ_MAX_DISTANCE,
        "pdq_min_quality": PDQ_MIN_QUALITY,
    }
