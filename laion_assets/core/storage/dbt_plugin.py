"""A dbt-duckdb plugin: dbt's DuckDB connections read `s3://` when the storage root is on S3.

`dbt/profiles.yml` loads it (`plugins: - module: laion_assets.core.storage.dbt_plugin`). dbt runs as a
subprocess of the Dagster step and inherits its environment: the storage root
(`LAION_ASSETS_ROOT`), `LAION_S3_ENDPOINT_URL`, the region and the AWS credential chain. With a
local root it does nothing. (dbt-duckdb's own `filesystems:` setting would need s3fs, which does not
resolve to a usable version here; pyarrow's S3 filesystem does the same job.)
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from laion_assets.core.storage.s3 import S3Credentials
from laion_assets.settings import load_settings


def credentials_from_env(env: dict[str, str] | None = None) -> S3Credentials:
    """Endpoint and region from the settings; keys are left to the AWS default chain."""
    s = load_settings(env)
    return S3Credentials(endpoint_url=s.s3_endpoint_url, region=s.s3_region)


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        if load_settings().root.startswith("s3://"):
            conn.register_filesystem(credentials_from_env().fsspec_filesystem())
