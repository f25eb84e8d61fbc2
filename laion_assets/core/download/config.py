"""Download settings. Every field carries its unit; every opt-out rule has its own switch."""

from __future__ import annotations

from dataclasses import dataclass

from laion_assets.core.lib.cpus import available_cpus
from laion_assets.core.lib.validation import (
    ConfigError,
    require_choice,
    require_int_range,
    require_range,
)

DEFAULT_MAX_URL_CHARS = 4096  # browsers take ~2 MB; sitemaps cap at 2048; LAION URLs are < 1000
RESIZE_MODES = ("keep_ratio", "center_crop", "border", "no")
DOWNSCALE_FILTER_NAMES = ("area", "bilinear", "bicubic", "lanczos")

# setting -> (lo, hi, lo_open) for floats: seconds must be > 0 (0 would make every download "time out")
_FLOAT_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "connect_timeout_s": (0.0, 3600.0, True),
    "read_timeout_s": (0.0, 3600.0, True),
    "total_timeout_s": (0.0, 86400.0, True),
    "backoff_base_s": (0.0, 3600.0, False),
    "max_retry_after_s": (0.0, 86400.0, False),
    "dns_cache_ttl_s": (0.0, 86400.0, False),
    "shard_timeout_s": (0.0, 7 * 86400.0, True),
    "decode_timeout_s": (0.0, 86400.0, True),
}
# setting -> (lo, hi) for integers
_INT_RANGES: dict[str, tuple[int, int]] = {
    "max_bytes": (1, 2**40),
    "min_bytes": (0, 2**40),
    "concurrency": (1, 100_000),
    "per_host_concurrency": (1, 10_000),
    "max_redirects": (0, 100),
    "retries": (0, 100),
    "host_failure_threshold": (1, 1_000_000),
    "robots_max_bytes": (1, 2**30),
    "max_pixels": (1, 2**40),
    "max_output_pixels": (1, 2**40),
    "max_decode_bytes": (1, 2**40),
    "max_url_chars": (16, 2**31),
    "image_size": (1, 65_535),
    "encode_quality": (1, 100),
    "decode_workers": (0, 4096),
    "processes": (0, 4096),
    "min_rows_per_process": (1, 10**9),
    "images_per_tar": (1, 10**9),
}


@dataclass(frozen=True)
class DownloadConfig:
    # --- network -------------------------------------------------------------------------------
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 10.0  # longest silence between two reads
    total_timeout_s: float = 30.0  # one attempt, all redirects and the whole body (kills slow drips)
    max_bytes: int = 10 * 1024 * 1024  # body cap; bigger (declared or streamed) -> too_large
    min_bytes: int = 5000  # LAION: smaller bodies are icons/trackers -> too_small
    concurrency: int = 64  # requests in flight per downloader process (see `processes`)
    per_host_concurrency: int = 4  # requests in flight to one host
    max_redirects: int = 5
    retries: int = 2  # extra attempts for transient failures (timeouts, 5xx, 429, resets)
    backoff_base_s: float = 0.5  # retry n waits backoff_base_s * 2**n (+ jitter) unless Retry-After
    max_retry_after_s: float = 60.0  # a Retry-After longer than this is not waited for -> rate_limited
    host_failure_threshold: int = 8  # consecutive transient failures before a host is given up
    dns_cache_ttl_s: float = 300.0
    max_url_chars: int = DEFAULT_MAX_URL_CHARS  # longer URLs (or redirect targets) -> url_too_long, never requested
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
    # Output bound: the resized image's width*height (a 100000x2 PNG at keep_ratio 256 asks for
    # 12.8M x 256) -> output_too_large, checked before any pixel is decoded.
    max_output_pixels: int = 16_777_216
    # Peak-memory bound of one decode: header width*height*bytes per pixel of the decoded mode
    # (RGBA 4, 16-bit gray 2) -> decompression_bomb. 8000x8000 RGBA = 256 MB: just allowed.
    max_decode_bytes: int = 256 * 1024 * 1024
    # Time bound of one decode/resize/encode (a progressive JPEG of thousands of scans): it runs in a
    # killable decoder process; past this the process is killed -> skipped/decode_timeout.
    decode_timeout_s: float = 20.0
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # keep_ratio | center_crop | border | no
    resize_only_if_bigger: bool = False
    border_color: tuple[int, int, int] = (255, 255, 255)
    encode_quality: int = 95  # JPEG quality of the stored image
    downscale_filter: str = "area"  # area (= img2dataset's cv2.INTER_AREA) | bilinear | bicubic | lanczos
    # The shard's hosts are split over `processes` downloader processes (each fetches its hosts'
    # rows); all of them feed one pool of `decode_workers` decoder processes; the parent writes tars.
    processes: int = 0  # 0 = available_cpus() (affinity and cgroup quota); 1 = one downloader process
    min_rows_per_process: int = 256  # fewer rows per process than this -> fewer processes
    decode_workers: int = 0  # decoder processes in the shard's pool (shared); 0 = available_cpus()
    # --- output / run ---------------------------------------------------------------------------
    images_per_tar: int = 10_000
    shard_timeout_s: float = 3600.0  # watchdog: rows still running then end as failed/shard_timeout

    def __post_init__(self) -> None:
        """Every numeric setting has its range; a bad value fails here with `<setting>=<value>: ...`."""
        require_choice("resize_mode", self.resize_mode, RESIZE_MODES)
        require_choice("downscale_filter", self.downscale_filter, DOWNSCALE_FILTER_NAMES)
        for name, (lo, hi, lo_open) in _FLOAT_RANGES.items():
            require_range(name, getattr(self, name), lo, hi, lo_open=lo_open)
        for name, (lo, hi) in _INT_RANGES.items():
            require_int_range(name, getattr(self, name), lo, hi)
        if self.min_bytes > self.max_bytes:
            raise ConfigError("min_bytes", self.min_bytes, f"must be <= max_bytes ({self.max_bytes})")
        if len(self.border_color) != 3:
            raise ConfigError("border_color", self.border_color, "must be three 0..255 integers (R, G, B)")
        for c in self.border_color:
            require_int_range("border_color", c, 0, 255)
        if not self.user_agent_token.strip():
            raise ConfigError("user_agent_token", self.user_agent_token, "must not be empty")

    def decode_pool_size(self) -> int:
        """Decoder processes shared by all of a shard's downloader processes: every usable core
        (each downloader has as many decode threads, so one big host alone can use them all)."""
        return self.decode_workers or available_cpus()

    def decode_threads(self, processes: int) -> int:
        """Decode threads in each downloader process (one per pool decoder, whatever `processes`)."""
        return self.decode_pool_size()

    def process_count(self, rows: int | None = None) -> int:
        """Downloader processes for a shard of `rows` rows (all of them when rows is None)."""
        n = self.processes or available_cpus()
        if rows is not None:
            n = min(n, max(1, rows // self.min_rows_per_process))
        return max(1, n)

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.user_agent_token.lower(), *(t.lower() for t in self.user_agent_token_aliases))
