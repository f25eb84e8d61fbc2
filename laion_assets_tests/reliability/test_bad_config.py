"""Every bad setting issue 11 names, set the way a user sets it, fails with one message naming it.

Environment variables go through `load_settings` (and `dagster definitions validate` for the real
load path); run config goes through `dg.materialize(..., run_config=...)` in a real instance. Each
case asserts the `<setting>=<value>: <allowed>` message and that nothing was materialized.
"""

from __future__ import annotations

import dagster as dg
import pytest

from laion_assets.core.lib.validation import ConfigError
from laion_assets.definitions import build_definitions
from laion_assets.defs.clip.resources import ClipModelResource
from laion_assets.defs.crawl.resources import CrawlSourceResource
from laion_assets.defs.download.resources import DownloaderResource
from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.settings import load_settings

# ------------------------------------------------------------------ environment -> load_settings

ENV_CASES = [
    ({"LAION_SAMPLE_IMAGE_PORT": "99999"}, "LAION_SAMPLE_IMAGE_PORT='99999'", r"must be in \[0, 65535\]"),
    ({"LAION_SAMPLE_IMAGE_PORT": "-1"}, "LAION_SAMPLE_IMAGE_PORT='-1'", r"must be in \[0, 65535\]"),
    ({"LAION_SAMPLE_IMAGE_PORT": "http"}, "LAION_SAMPLE_IMAGE_PORT='http'", r"must be an integer in \[0, 65535\]"),
    ({"LAION_FILES_PER_SHARD": "0"}, "LAION_FILES_PER_SHARD='0'", r"must be in \[1, 100000\]"),
    ({"LAION_ASSETS_ROOT": "/data/crawl-[2024]"}, "LAION_ASSETS_ROOT='/data/crawl-[2024]'", "glob characters"),
    ({"LAION_ASSETS_ROOT": "/data/*"}, "LAION_ASSETS_ROOT='/data/*'", "glob characters"),
    ({"LAION_ALLOW_PRIVATE_HOSTS": "127.0.0.1,0.0.0.0/0"}, "LAION_ALLOW_PRIVATE_HOSTS='0.0.0.0/0'",
     "wider than /8 are refused"),
    ({"LAION_ALLOW_PRIVATE_HOSTS": "::/0"}, "LAION_ALLOW_PRIVATE_HOSTS='::/0'", "wider than /8 are refused"),
    ({"LAION_ALLOW_PRIVATE_HOSTS": "10.0.0.0/33"}, "LAION_ALLOW_PRIVATE_HOSTS='10.0.0.0/33'",
     "IP address, a CIDR network or a host name"),
    ({"LAION_ASSETS_PROFILE": "staging"}, "LAION_ASSETS_PROFILE='staging'", "must be one of 'embedded', 'production'"),
    ({"LAION_CLIP_DEVICE": "gpu"}, "LAION_CLIP_DEVICE='gpu'", "must be auto, cpu, mps, cuda"),
    ({"LAION_CRAWL": ".."}, "LAION_CRAWL='..'", "letters, digits"),
    ({"LAION_CRAWL": "CC/MAIN"}, "LAION_CRAWL='CC/MAIN'", "letters, digits"),
]


@pytest.mark.parametrize("env,setting,allowed", ENV_CASES, ids=[str(c[0]) for c in ENV_CASES])
def test_bad_environment_fails_at_load_naming_the_variable(env, setting, allowed):
    with pytest.raises(ConfigError, match=allowed) as info:
        load_settings({"LAION_ASSETS_ROOT": "/tmp/laion-root", **env})
    assert str(info.value).replace("'", "").startswith(setting.replace("'", "") + ":"), str(info.value)


def test_load_settings_reads_integers_from_the_given_dict_not_os_environ(monkeypatch):
    monkeypatch.setenv("LAION_FILES_PER_SHARD", "3")
    monkeypatch.setenv("LAION_SAMPLE_IMAGE_PORT", "99999")  # would fail if it were read
    s = load_settings({"LAION_ASSETS_ROOT": "/tmp/r", "LAION_FILES_PER_SHARD": "7", "LAION_SAMPLE_IMAGE_PORT": "0"})
    assert (s.files_per_shard, s.sample_image_port) == (7, 0)


def test_bad_environment_fails_build_definitions(embedded_env, monkeypatch):
    """What the code location runs at load (`defs = build_definitions()` reads os.environ)."""
    monkeypatch.setenv("LAION_SAMPLE_IMAGE_PORT", "99999")
    with pytest.raises(ConfigError, match=r"^LAION_SAMPLE_IMAGE_PORT=99999: must be in \[0, 65535\]$"):
        build_definitions()


# ------------------------------------------------------------------ run config -> dg.materialize

PARTITION = "CFG-CRAWL/00000"


def _error_text(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        err = getattr(event.event_specific_data, "error", None) if event.event_specific_data else None
        while err is not None:
            texts.append(err.message)
            err = err.cause
    return "\n".join(texts)


@pytest.fixture(scope="module")
def defs_and_instance(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg") / "data"
    env = {"LAION_ASSETS_PROFILE": "embedded", "LAION_ASSETS_ROOT": str(root), "LAION_SAMPLE_IMAGE_PORT": "0"}
    defs = build_definitions(load_settings(env))
    home = tmp_path_factory.mktemp("cfg-home")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        instance.add_dynamic_partitions("shards", [PARTITION])
        yield defs, instance, root


_TINY = load_settings({"LAION_ASSETS_ROOT": "/tmp/unused"})
TINY = {"model_name": _TINY.clip_model, "pretrained": _TINY.clip_pretrained}  # required when overridden

RUN_CONFIG_CASES = [
    # (asset, run_config, expected message): each from issue 11 or a sibling of one
    ("filtered_pairs", {"ops": {"filtered_pairs": {"config": {"min_similarity": 2.0}}}},
     r"min_similarity=2\.0: must be in \[-1\.0, 1\.0\]"),
    ("filtered_pairs", {"ops": {"filtered_pairs": {"config": {"min_similarity": float("nan")}}}},
     r"min_similarity=nan: must be a finite number"),
    ("image_text_pairs", {"ops": {"image_text_pairs": {"config": {"max_bad_record_ratio": 1.5}}}},
     r"max_bad_record_ratio=1\.5: must be in \[0\.0, 1\.0\]"),
    ("published_dataset", {"ops": {"published_dataset": {"config": {"rows_per_part": 0}}}},
     r"rows_per_part=0: must be in \[1, 100000000\]"),
    ("crawl_manifest", {"ops": {"crawl_manifest": {"config": {"files_per_shard": -2}}}},
     r"files_per_shard=-2: must be in \[1, 100000\]"),
    ("sample_crawl", {"ops": {"sample_crawl": {"config": {"mismatch_ratio": 2.0}}}},
     r"mismatch_ratio=2\.0: must be in \[0\.0, 1\.0\]"),
    ("image_downloads", {"resources": {"sample_image_server": {"config": {"port": 99999}}}},
     r"port=99999: must be in \[0, 65535\]"),
    # Validated by the stage's core config (DownloadConfig, ClipConfig): the message names the field.
    ("image_downloads", {"resources": {"downloader": {"config": {"options": {"max_redirects": -1}}}}},
     r"max_redirects=-1: must be"),
    ("clip_scores", {"resources": {"clip_model": {"config": {**TINY, "options": {"precision": "fp8"}}}}},
     r"precision.*must be"),
]


@pytest.mark.parametrize("asset,run_config,message", RUN_CONFIG_CASES,
                         ids=[f"{c[0]}-{str(c[1])[:70]}" for c in RUN_CONFIG_CASES])
def test_bad_run_config_fails_at_run_start_naming_the_setting(defs_and_instance, asset, run_config, message):
    import re

    defs, instance, root = defs_and_instance
    keys = {dg.AssetKey(asset)} | ({dg.AssetKey("filtered_pairs_drop_log")} if asset == "filtered_pairs" else set())
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)  # one step: both outputs
    partitioned = asset in ("image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs")
    result = job.execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False,
        partition_key=PARTITION if partitioned else None,
    )
    assert not result.success
    text = _error_text(result)
    assert re.search(message, text), text[-2000:]
    assert result.get_asset_materialization_events() == []
    assert not (root / "CFG-CRAWL").exists()


# Resource settings: built in code by build_definitions (at load) or from run config (at run start,
# one case above proves the path); the same pydantic validators run either way, so they are tried
# here by constructing the resource, which is fast.
RESOURCE_CASES = [
    (lambda: DownloaderResource(allow_private_hosts=["0.0.0.0/0"]),
     r"downloader\.allow_private_hosts='0\.0\.0\.0/0': networks wider than /8 are refused"),
    (lambda: StorageResource(root="/data/crawl-{a,b}"), r"LAION_ASSETS_ROOT='/data/crawl-\{a,b\}': must not contain"),
    (lambda: CrawlSourceResource(crawl="..", source_dir="/x"), r"crawl_source\.crawl='\.\.': must be"),
    (lambda: CrawlSourceResource(crawl="C", source_dir="/x", files_per_shard=0), r"files_per_shard=0: must be"),
    (lambda: SampleImageServerResource(port=70000), r"port=70000: must be in \[0, 65535\]"),
    (lambda: ClipModelResource(**TINY, batch_size=0), r"batch_size=0: must be in \[1, "),
    (lambda: DownloaderResource(options={"no_such_option": 1}), r"downloader\.options: .*no_such_option"),
    (lambda: DownloaderResource(options={"connect_timeout_s": 0}), r"connect_timeout_s=0(\.0)?: must be"),
    (lambda: DownloaderResource(options={"read_timeout_s": -1.0}), r"read_timeout_s=-1(\.0)?: must be"),
    (lambda: DownloaderResource(options={"total_timeout_s": 0.0}), r"total_timeout_s=0(\.0)?: must be"),
    (lambda: DownloaderResource(options={"max_redirects": -1}), r"max_redirects=-1: must be"),
    (lambda: ClipModelResource(**TINY, options={"prefetch_factor": 0}), r"prefetch_factor.*(must be|>= 1)"),
]


@pytest.mark.parametrize("build,message", RESOURCE_CASES, ids=[c[1][:40] for c in RESOURCE_CASES])
def test_bad_resource_settings_fail_when_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()
