import subprocess
import sys

import dagster as dg
import pytest

from laion_assets.definitions import build_definitions
from laion_assets.settings import load_settings
from laion_assets_tests.conftest import REPO

STAGES = {
    "sample_crawl": "sample",
    "crawl_manifest": "crawl",
    "image_text_pairs": "extract",
    "image_downloads": "download",
    "clip_scores": "clip",
    "filtered_pairs": "filter",
    "stg_filtered_pairs": "publish",
    "published_pairs": "publish",
    "dedup_stats": "publish",
    "published_dataset": "publish",
    "search_index": "publish",
}


def test_graph_has_every_stage_in_its_group(embedded_env):
    defs = build_definitions(load_settings())
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k: groups.get(k) for k in STAGES} == STAGES
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
    assert partitioned == {"image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs",
                           "filtered_pairs_drop_log"}  # the drop log: per shard, written by filtered_pairs
    assert graph.get(dg.AssetKey("clip_scores")).pools == {"gpu"}
    checks_by_asset: dict[str, int] = {}
    for check_key in graph.asset_check_keys:
        checks_by_asset[check_key.asset_key.to_user_string()] = checks_by_asset.get(check_key.asset_key.to_user_string(), 0) + 1
    for asset in ["crawl_manifest", "image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs",
                  "published_pairs", "published_dataset"]:
        assert checks_by_asset.get(asset, 0) >= 1, f"{asset} has no asset check"


def test_production_profile_uses_the_laion_model(monkeypatch):
    monkeypatch.setenv("LAION_ASSETS_PROFILE", "production")
    s = load_settings()
    assert (s.clip_model, s.clip_pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert s.allow_private_hosts == () and not s.sample_server_enabled
    monkeypatch.setenv("LAION_ASSETS_PROFILE", "staging")
    with pytest.raises(ValueError, match="LAION_ASSETS_PROFILE"):
        load_settings()


def test_code_location_loads_from_workspace_yaml(embedded_env):
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
