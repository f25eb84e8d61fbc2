"""Arrow schemas of every stage's parquet, one module per stage.

DuckDB, dbt and the Dagster shell all read the same files, so the column contract lives here and
nowhere else. Each stage module owns its schema; downstream stages rely only on the columns named
in their module docstring as the contract.
"""

from laion_assets.core.schemas.downloads import DOWNLOAD_SCHEMA, DOWNLOAD_STATUSES
from laion_assets.core.schemas.pairs import PAIR_ERROR_SCHEMA, PAIR_SCHEMA
from laion_assets.core.schemas.receipts import RECEIPTS_SCHEMA
from laion_assets.core.schemas.release import RELEASE_SCHEMA
from laion_assets.core.schemas.scores import SCORE_SCHEMA

__all__ = [
    "DOWNLOAD_SCHEMA",
    "DOWNLOAD_STATUSES",
    "PAIR_ERROR_SCHEMA",
    "PAIR_SCHEMA",
    "RECEIPTS_SCHEMA",
    "RELEASE_SCHEMA",
    "SCORE_SCHEMA",
]
