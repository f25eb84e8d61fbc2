"""Every Dagster object the code location has, by name, and every object in `defs/` loaded.

`definitions.py` builds the one `Definitions` by hand (the profile decides, e.g., whether the sample
exists), so a new asset, check, job, schedule or sensor in `defs/` must be added there: this test
fails until it is, and until the inventory below names it.
"""

import importlib
import pkgutil

import dagster as dg

import laion_assets.defs
from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings

ASSETS = {
    "sample_crawl", "crawl_manifest", "image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs",
    "filtered_pairs_drop_log",  # the drop logs: a second output of the filtered_pairs step
    "removal_list", "stg_filtered_pairs", "stg_removal_entries", "stg_shard_drops", "removal_matches",
    "placeholder_images", "release_drops", "published_pairs", "drop_log", "dedup_stats", "stats_by_language",
    "stats_drops_by_reason", "stats_funnel", "stats_similarity_histogram", "stats_top_domains", "published_dataset",
    "search_index", "removal_receipts", "crawl_progress",
}
# Checks declared in Python (core/<stage>/checks + defs); dbt's tests add checks on the dbt models.
PYTHON_CHECKS = {
    "crawl_manifest": {"manifest_shard_sizes", "manifest_unique_files"},
    "image_text_pairs": {"bad_record_ratio_under_threshold", "errors_match_stats", "pairs_caption_length",
                         "pairs_host_length", "pairs_key_unique", "pairs_provenance_not_null",
                         "pairs_unique_url_text", "pairs_url_well_formed"},
    "image_downloads": {"downloads_ok_rows_complete", "downloads_ok_rows_in_tars", "downloads_one_row_per_pair",
                        "downloads_reason_vocabulary", "downloads_tar_members_unique",
                        "downloads_success_rate_warn", "downloads_success_rate_error"},
    "clip_scores": {"clip_every_ok_download_scored_or_reason", "clip_model_id_constant",
                    "clip_one_embedding_per_scored_row", "clip_similarity_in_range"},
    "filtered_pairs": {"filtered_downloaded", "filtered_drop_log_accounts_for_every_pair", "filtered_over_threshold"},
    "published_dataset": {"release_files_match_card", "release_no_removal_match", "release_provenance",
                          "release_similarity_over_threshold", "release_unique_images", "release_unique_pairs",
                          "release_urls_http"},
    "search_index": {"search_index_matches_release"},
    "removal_list": {"removal_requests_accepted"},
}
DBT_CHECKED_MODELS = {"dedup_stats", "drop_log", "placeholder_images", "published_pairs", "release_drops",
                      "stg_filtered_pairs", "stg_removal_entries", "stg_shard_drops"}
JOBS = {"crawl_job", "shard_job", "clip_job", "publish_job", "takedown_job", "progress_job"}
SCHEDULES = {"shard_backfill", "crawl_progress_schedule"}
SENSORS = {"crawl_discovery_sensor", "failure_alerts", "publish_automation", "removal_requests_sensor"}


def _defs() -> dg.Definitions:
    return build_definitions(load_settings({}))


def test_inventory_of_the_code_location(embedded_env):
    defs = _defs()
    graph = defs.resolve_asset_graph()
    assets = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert assets == ASSETS
    checks: dict[str, set[str]] = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    assert {a: c for a, c in checks.items() if a in PYTHON_CHECKS} == PYTHON_CHECKS
    assert {a for a in checks if a not in PYTHON_CHECKS} == DBT_CHECKED_MODELS
    assert {j.name for j in defs.jobs} == JOBS
    assert {s.name for s in defs.schedules} == SCHEDULES
    assert {s.name for s in defs.sensors} == SENSORS


def _module_objects():
    """Every Dagster object defined at module level anywhere under laion_assets/defs/."""
    kinds = (dg.AssetsDefinition, dg.AssetChecksDefinition, dg.ScheduleDefinition, dg.SensorDefinition)
    for info in pkgutil.walk_packages(laion_assets.defs.__path__, "laion_assets.defs."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", module.__name__) != module.__name__ and not isinstance(obj, kinds):
                continue
            if isinstance(obj, kinds) or type(obj).__name__ == "UnresolvedAssetJobDefinition":
                yield info.name, name, obj


def test_every_object_in_defs_is_loaded(embedded_env):
    defs = _defs()
    graph = defs.resolve_asset_graph()
    asset_keys, check_keys = graph.get_all_asset_keys(), graph.asset_check_keys
    jobs, schedules, sensors = ({o.name for o in c} for c in (defs.jobs, defs.schedules, defs.sensors))
    found = list(_module_objects())
    assert len(found) >= 10  # the walk sees the stages' assets, jobs and sensors
    for module, name, obj in found:
        where = f"{module}.{name}"
        if isinstance(obj, dg.AssetsDefinition):
            assert set(obj.keys) <= asset_keys, f"{where}: asset not in Definitions"
            assert set(obj.check_keys) <= check_keys, f"{where}: its checks are not in Definitions"
        elif isinstance(obj, dg.AssetChecksDefinition):
            assert set(obj.check_keys) <= check_keys, f"{where}: asset check not in Definitions"
        elif isinstance(obj, dg.ScheduleDefinition):
            assert obj.name in schedules, f"{where}: schedule not in Definitions"
        elif isinstance(obj, dg.SensorDefinition):
            assert obj.name in sensors, f"{where}: sensor not in Definitions"
        else:
            assert obj.name in jobs, f"{where}: job not in Definitions"
