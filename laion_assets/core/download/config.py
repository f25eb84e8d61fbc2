"""Download settings. Every field carries its unit; every opt-out rule has its own switch."""

from __future__ import annotations

import os
from dataclasses import dataclass

from laion_assets.core.cpus import available_cpus

RESIZE_MODES = ("keep_ratio", "center_crop", "border", "no")


@dataclass(frozen=True)
class DownloadConfig:
    # --- network -------------------------------------------------------------------------------
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 10.0  # longest silence between two reads
    total_timeout_s: float = 30.0  # one attempt, all redirects and the whole body (kills slow drips)
    max_bytes: int = 10 * 1024 * 1024  # body cap; bigger (declared or streamed) -> too_large
    min_bytes: int = 5000  # LAION: smaller bodies are icons/trackers -> too_small
    concurrency: int = 64  # requests in flight for the whole shard
    per_host_concurrency: int = 4  # requests in flight to one host
    max_redirects: int = 5
    retries: int = 2  # extra attempts for transient failures (timeouts, 5xx, 429, resets)
    backoff_base_s: float = 0.5  # retry n waits backoff_base_s * 2**n (+ jitter) unless Retry-After
    max_retry_after_s: float = 60.0  # a Retry-After longer than this is not waited for -> rate_limited
    host_failure_threshold: int = 8  # consecutive transient failures before a host is given up
    dns_cache_ttl_s: float = 300.0
    user_agent: str = (
        "laion-assets/0.1 (image-text dataset builder; honours robots.txt, X-Robots-Tag noai, TDMRep)"
    )
    user_agent_token: str = "laion-assets"  # the product token matched in robots.txt / X-Robots-Tag
    # Opt-outs addressed to these tokens are honoured too: owners who blocked LAION's usual
    # downloader meant to block us.
    user_agent_token_aliases: tuple[str, ...] = ("img2dataset",)
    # --- policy (all on by default) -------------------------------------------------------------
    respect_robots_txt: bool = True
    respect_x_robots_tag: bool = True
    respect_tdmrep: bool = True
    respect_page_optout: bool = True
    robots_max_bytes: int = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
    # --- security -------------------------------------------------------------------------------
    # Hosts, IPs or CIDR networks that may be non-public (tests and the demo use "127.0.0.1").
    allow_private_hosts: tuple[str, ...] = ()
    # --- image ----------------------------------------------------------------------------------
    max_pixels: int = 64_000_000  # header width*height above this -> decompression_bomb, never decoded
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # keep_ratio | center_crop | border | no
    resize_only_if_bigger: bool = False
    border_color: tuple[int, int, int] = (255, 255, 255)
    encode_quality: int = 95  # JPEG quality of the stored image
    decode_workers: int = 0  # threads for decode/resize/encode; 0 = available_cpus() (affinity and cgroup quota)
    # --- output / run ---------------------------------------------------------------------------
    images_per_tar: int = 10_000
    shard_timeout_s: float = 3600.0  # watchdog: rows still running then end as failed/shard_timeout

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, not {self.resize_mode!r}")
        for name in ("concurrency", "per_host_concurrency", "image_size", "images_per_tar", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 1 <= self.encode_quality <= 100:
            raise ValueError("encode_quality must be in 1..100")
        if self.min_bytes > self.max_bytes:
            raise ValueError("min_bytes must not exceed max_bytes")

    @property
    def workers(self) -> int:
        return self.decode_workers or available_cpus()

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.user_agent_token.lower(), *(t.lower() for t in self.user_agent_token_aliases))
