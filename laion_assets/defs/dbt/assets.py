"""dbt models over all shards in DuckDB: cross-shard dedup, the published table, dedup stats.

dbt tests surface as Dagster asset checks on the models they test.
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from laion_assets.defs.dbt.project import dbt_project
from laion_assets.defs.resources import StorageResource


class LaionDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec
        return spec.replace_attributes(group_name="publish")


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    dagster_dbt_translator=LaionDbtTranslator(),
    name="laion_dbt_models",
)
def laion_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, storage: StorageResource):
    # profiles.yml and sources.yml read the storage root from the environment of the dbt process.
    st = storage.get()
    os.environ["LAION_ASSETS_ROOT"] = st.root_uri
    warehouse = st.local_warehouse_path()
    os.environ["LAION_WAREHOUSE_PATH"] = str(warehouse)
    yield from dbt.cli(["build"], context=context).stream()
    st.upload_file(warehouse, "warehouse.duckdb")  # a no-op on a local root: the file is already there
