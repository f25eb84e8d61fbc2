"""How many CPUs this process may really use: affinity and the cgroup quota, not the host's cores.

`os.cpu_count()` reports the host's cores; a container limited to 2 CPUs on a 64-core host would
start 64 threads and thrash. Every pool size in the pipeline comes from `available_cpus()`.
"""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def cpus_allowed(affinity: int | None, quota: float | None, host: int | None) -> int:
    """The smallest of affinity, the quota rounded up, and the host's count; at least 1."""
    candidates = [n for n in (affinity, host) if n]
    if quota is not None:
        candidates.append(max(1, math.ceil(quota)))
    return max(1, min(candidates)) if candidates else 1


@cache
def available_cpus() -> int:
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return cpus_allowed(affinity, _cgroup_quota(), os.cpu_count())
