"""Small helpers every partitioned asset uses."""

import time
from collections.abc import Callable
from typing import Any

import dagster as dg

# Shard stages retry transient failures (S3/HTTP throttling, a node lost mid-step) with exponential
# backoff: 30 s, 60 s, 120 s (+-jitter). Deterministic failures raise `dg.Failure(allow_retries=False)`.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def progress_logger(context: dg.AssetExecutionContext, what: str, every_s: float = 10.0) -> Callable[..., None]:
    """A progress callback that writes '<what>: done/total' to the run log at most every `every_s`."""
    last = [0.0]

    def report(done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or (total is not None and done >= total):
            last[0] = now
            suffix = f"/{total}" if total is not None else ""
            context.log.info(f"{context.partition_key} {what}: {done}{suffix}")

    return report


def stats_metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """Flat stats as UI metadata: numbers stay numbers, the rest becomes text."""
    out: dict[str, Any] = {}
    for k, v in sorted(stats.items()):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out[k] = str(v)
        else:
            out[k] = v
    return out
