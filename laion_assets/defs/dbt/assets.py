"""dbt models over all shards in DuckDB: cross-shard dedup, the published table, dedup stats.

dbt tests surface as Dagster asset checks on the models they test.
"""

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from laion_assets.defs.automation.schedules import PUBLISH_CONDITION
from laion_assets.defs.dbt.project import dbt_project, vars_args
from laion_assets.core.storage.layout import WAREHOUSE
from laion_assets.defs.lib.resources import StorageResource


class LaionDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec
        return spec.replace_attributes(group_name="publish", automation_condition=PUBLISH_CONDITION)


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    dagster_dbt_translator=LaionDbtTranslator(),
    name="laion_dbt_models",
)
def laion_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, storage: StorageResource):
    # profiles.yml and sources.yml read the storage root from the environment of the dbt process.
    st = storage.get()
    warehouse = st.local_warehouse_path()
    with dbt_environment(LAION_ASSETS_ROOT=st.root_uri, LAION_WAREHOUSE_PATH=str(warehouse)):
        # The publish sensor requests models piecemeal (a model becomes ready when its own deps do).
        # dbt's default (eager) indirect selection then runs a multi-model test with the first of its
        # models, against the others' stale or missing tables: `every_kept_pair_published_or_dropped`
        # failed in a `--select stg_filtered_pairs` run, and publish stalled behind that failure.
        # `buildable` runs such a test with the last of its models, once all of them are fresh.
        yield from dbt.cli(["build", "--indirect-selection", "buildable", *vars_args(st.root_uri)], context=context).stream()
    st.upload_file(warehouse, WAREHOUSE)  # a no-op on a local root: the file is already there


@contextlib.contextmanager
def dbt_environment(**values: str) -> Iterator[None]:
    """Set the variables the dbt process reads, and restore them after: a warehouse path left in
    os.environ would send the next build in this process (another run, a test) to the old file."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
