"""Profile defaults, read once from the environment when definitions load.

The embedded default (no variables set) runs offline on the sample crawl with the project's tiny
CLIP model, storing everything under ./data. Production sets LAION_ASSETS_PROFILE=production (the
real LAION ViT-B-32 model) and points LAION_ASSETS_ROOT, LAION_CRAWL and LAION_CRAWL_SOURCE at the
crawl to process; any single variable below overrides its default in either profile.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from laion_assets.core.storage.layout import SAMPLE_CRAWL_DIR
from laion_assets.core.lib.validation import ConfigError, require_choice, require_int_range

PROFILES = ("embedded", "production")
# DuckDB (funnel counts, dbt sources) reads stage files through glob patterns under the root: a root
# containing one of these silently matches nothing, so it is refused where it is read.
GLOB_CHARACTERS = "*?[]{}"
ALERT_WEBHOOK_ENV = "LAION_ALERT_WEBHOOK_URL"
# The storage bucket's keys: passed to dagster-aws's S3Resource as EnvVars (by name) when set.
AWS_KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_CLIP_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Settings:
    profile: str
    root: str
    crawl: str
    crawl_source: str
    files_per_shard: int
    clip_model: str
    clip_pretrained: str
    clip_device: str
    allow_private_hosts: tuple[str, ...]
    sample_image_port: int | None  # None: chosen per storage root and reserved on the host
    sample_server_enabled: bool
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    local_cache_dir: str = ""
    crawl_source_anonymous: bool = True
    crawl_s3_endpoint_url: str | None = None
    crawl_max_files: int = 0
    crawl_discovery_root: str = ""
    crawl_discover_only: tuple[str, ...] = ()
    crawl_discover_newer_than: str = ""
    dbt_project_dir: str = ""
    alert_webhook_set: bool = False
    ui_base_url: str = "http://localhost:3000"
    aws_key_vars: tuple[str, ...] = ()
    backfill_max_runs: int = 8
    backfill_max_failed_runs: int = 3
    backfill_cron: str = "*/10 * * * *"
    removal_retry_after_s: float = 60.0  # LAION_REMOVAL_RETRY_AFTER_S: the request sensor's first retry wait
    download_health: tuple[tuple[str, float], ...] = ()  # LAION_DOWNLOAD_* thresholds (core/download/health.py)


def _env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, f"must be an integer in [{lo}, {hi}]") from None
    return require_int_range(name, value, lo, hi)


def check_storage_root(root: str, setting: str = "LAION_ASSETS_ROOT") -> str:
    """A local directory or an s3:// URI without glob characters (DuckDB would treat them as patterns)."""
    if not root.strip():
        raise ConfigError(setting, root, "must be a directory path (or s3://bucket/prefix)")
    bad = sorted({c for c in root if c in GLOB_CHARACTERS})
    if bad:
        raise ConfigError(
            setting, root,
            f"must not contain the glob characters {' '.join(GLOB_CHARACTERS)} (found {' '.join(bad)}): "
            "DuckDB reads stage files through glob patterns and would match nothing",
        )
    if root.startswith("s3://"):
        from laion_assets.core.storage.s3 import parse_s3_uri

        try:
            parse_s3_uri(root)
        except ValueError:
            raise ConfigError(setting, root, "must be s3://bucket[/prefix] or a local directory") from None
    return root


def check_crawl_name(crawl: str, setting: str = "LAION_CRAWL") -> str:
    """One path segment of letters, digits, '.', '_', '-' (it names directories and partition keys)."""
    from laion_assets.core.storage.keys import validate_crawl_name

    try:
        return validate_crawl_name(crawl)
    except ValueError:
        raise ConfigError(
            setting, crawl, "must be 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
        ) from None


def machine_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Per-machine cache (e.g. the decompressed language model): $LAION_CACHE_DIR, else
    $XDG_CACHE_HOME/laion-assets, else ~/.cache/laion-assets. Read on its own (cheap), not by load_settings."""
    env = os.environ if env is None else env
    if env.get("LAION_CACHE_DIR"):
        return Path(env["LAION_CACHE_DIR"])
    xdg = env.get("XDG_CACHE_HOME")
    return Path(xdg) / "laion-assets" if xdg else Path.home() / ".cache" / "laion-assets"


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
    """Every value read from `env` (os.environ when None) and checked: one ConfigError names the
    variable and what is allowed."""
    from laion_assets.core.download.health import health_thresholds
    from laion_assets.core.download.netguard import parse_allow_list

    env = {**(os.environ if env is None else env), **(overrides or {})}
    profile = require_choice("LAION_ASSETS_PROFILE", env.get("LAION_ASSETS_PROFILE", "embedded"), PROFILES)
    root = check_storage_root(env.get("LAION_ASSETS_ROOT") or str(Path.cwd() / "data"))
    embedded = profile == "embedded"
    if embedded:
        from laion_assets.weights import TINY_CHECKPOINT, TINY_MODEL_NAME

        model, pretrained = TINY_MODEL_NAME, str(TINY_CHECKPOINT)
    else:
        model, pretrained = "ViT-B-32", "laion2b_s34b_b79k"
    from laion_assets.core.sample.crawl import SAMPLE_CRAWL  # here, not at import: it pulls warcio and PIL

    crawl = env.get("LAION_CRAWL", SAMPLE_CRAWL if embedded else "")
    if crawl:
        check_crawl_name(crawl)
    allow = tuple(
        h.strip() for h in env.get("LAION_ALLOW_PRIVATE_HOSTS", "127.0.0.1" if embedded else "").split(",")
        if h.strip()
    )
    parse_allow_list(allow, setting="LAION_ALLOW_PRIVATE_HOSTS")
    device = env.get("LAION_CLIP_DEVICE", "auto")
    if not _CLIP_DEVICE.match(device):
        raise ConfigError("LAION_CLIP_DEVICE", device, "must be auto, cpu, mps, cuda or cuda:<index>")
    return Settings(
        profile=profile,
        root=root,
        crawl=crawl,
        crawl_source=env.get(
            "LAION_CRAWL_SOURCE", f"{root.rstrip('/')}/{SAMPLE_CRAWL_DIR}/warc" if embedded else ""
        ),
        files_per_shard=_env_int(env, "LAION_FILES_PER_SHARD", 2 if embedded else 10, 1, 100_000),
        clip_model=env.get("LAION_CLIP_MODEL", model),
        clip_pretrained=env.get("LAION_CLIP_PRETRAINED", pretrained),
        clip_device=device,
        allow_private_hosts=allow,
        sample_image_port=(  # unset: None, a port chosen per storage root (core/sample/ports.py)
            _env_int(env, "LAION_SAMPLE_IMAGE_PORT", 0, 0, 65535)
            if env.get("LAION_SAMPLE_IMAGE_PORT", "").strip() else None
        ),
        sample_server_enabled=embedded,
        s3_endpoint_url=env.get("LAION_S3_ENDPOINT_URL") or None,
        s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        local_cache_dir=env.get("LAION_LOCAL_CACHE", ""),
        crawl_s3_endpoint_url=env.get("LAION_CRAWL_S3_ENDPOINT_URL") or None,
        crawl_source_anonymous=env.get("LAION_CRAWL_SOURCE_ANONYMOUS", "1") not in ("0", "false", "no"),
        crawl_max_files=_env_int(env, "LAION_CRAWL_MAX_FILES", 0, 0, 100_000_000),
        crawl_discovery_root=env.get("LAION_CRAWL_DISCOVERY_ROOT", ""),
        crawl_discover_only=tuple(
            check_crawl_name(c.strip(), "LAION_CRAWL_DISCOVER_ONLY")
            for c in env.get("LAION_CRAWL_DISCOVER_ONLY", "").split(",") if c.strip()
        ),
        crawl_discover_newer_than=env.get("LAION_CRAWL_DISCOVER_NEWER_THAN", ""),
        dbt_project_dir=env.get("LAION_DBT_PROJECT_DIR", ""),
        # The webhook URL is a secret: only whether it is set is read here; the resource resolves
        # it as an EnvVar at run time, so it is never stored in the instance or shown.
        alert_webhook_set=bool(env.get(ALERT_WEBHOOK_ENV)),
        ui_base_url=env.get("LAION_DAGSTER_UI_URL") or "http://localhost:3000",
        aws_key_vars=tuple(v for v in AWS_KEY_VARS if env.get(v)),
        backfill_max_runs=_env_int(env, "LAION_BACKFILL_MAX_RUNS", 8, 1, 10_000),
        backfill_max_failed_runs=_env_int(env, "LAION_BACKFILL_MAX_FAILED_RUNS", 3, 1, 100),
        backfill_cron=env.get("LAION_BACKFILL_CRON") or "*/10 * * * *",
        download_health=tuple(sorted(health_thresholds(env).items())),
        removal_retry_after_s=float(_env_int(env, "LAION_REMOVAL_RETRY_AFTER_S", 60, 0, 86_400)),
    )
