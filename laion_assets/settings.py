"""Profile defaults, read once from the environment when definitions load.

The embedded default (no variables set) runs offline on the sample crawl with the project's tiny
CLIP model, storing everything under ./data. Production sets LAION_ASSETS_PROFILE=production (the
real LAION ViT-B-32 model) and points LAION_ASSETS_ROOT, LAION_CRAWL and LAION_CRAWL_SOURCE at the
crawl to process; any single variable below overrides its default in either profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from laion_assets.core.sample_crawl import SAMPLE_CRAWL

PROFILES = ("embedded", "production")


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
    sample_image_port: int
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


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    profile = env.get("LAION_ASSETS_PROFILE", "embedded")
    if profile not in PROFILES:
        raise ValueError(f"LAION_ASSETS_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    root = env.get("LAION_ASSETS_ROOT") or str(Path.cwd() / "data")
    embedded = profile == "embedded"
    if embedded:
        from laion_assets.models import TINY_CHECKPOINT, TINY_MODEL_NAME

        model, pretrained = TINY_MODEL_NAME, str(TINY_CHECKPOINT)
    else:
        model, pretrained = "ViT-B-32", "laion2b_s34b_b79k"
    return Settings(
        profile=profile,
        root=root,
        crawl=env.get("LAION_CRAWL", SAMPLE_CRAWL if embedded else ""),
        crawl_source=env.get(
            "LAION_CRAWL_SOURCE", f"{root.rstrip('/')}/sample-crawl/warc" if embedded else ""
        ),
        files_per_shard=_env_int("LAION_FILES_PER_SHARD", 2 if embedded else 10),
        clip_model=env.get("LAION_CLIP_MODEL", model),
        clip_pretrained=env.get("LAION_CLIP_PRETRAINED", pretrained),
        clip_device=env.get("LAION_CLIP_DEVICE", "auto"),
        allow_private_hosts=tuple(
            h for h in env.get("LAION_ALLOW_PRIVATE_HOSTS", "127.0.0.1" if embedded else "").split(",") if h
        ),
        sample_image_port=_env_int("LAION_SAMPLE_IMAGE_PORT", 18765),
        sample_server_enabled=embedded,
        s3_endpoint_url=env.get("LAION_S3_ENDPOINT_URL") or None,
        s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        local_cache_dir=env.get("LAION_LOCAL_CACHE", ""),
        crawl_s3_endpoint_url=env.get("LAION_CRAWL_S3_ENDPOINT_URL") or None,
        crawl_source_anonymous=env.get("LAION_CRAWL_SOURCE_ANONYMOUS", "1") not in ("0", "false", "no"),
        crawl_max_files=_env_int("LAION_CRAWL_MAX_FILES", 0),
        crawl_discovery_root=env.get("LAION_CRAWL_DISCOVERY_ROOT", ""),
        crawl_discover_only=tuple(c for c in env.get("LAION_CRAWL_DISCOVER_ONLY", "").split(",") if c),
        crawl_discover_newer_than=env.get("LAION_CRAWL_DISCOVER_NEWER_THAN", ""),
    )
