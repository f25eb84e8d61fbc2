"""Download health: an outage (0 of 980 images downloaded) is a failed check, an alert and a named
cause when a release is blocked, never a green shard.

The rate is over rows whose fetch was tried and could have succeeded: `failed / (ok + failed)`.
Skipped rows (opt-outs, content rules) are decisions, not an outage, and are left out. Thresholds
come from the settings (`laion_assets/settings.py` reads the environment; defaults in DEFAULTS, documented in docs/download.md):
`LAION_DOWNLOAD_WARN_FAILED_RATIO`, `LAION_DOWNLOAD_ERROR_FAILED_RATIO`, `LAION_DOWNLOAD_MIN_ROWS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laion_assets.core.checks import SqlCheck
from laion_assets.core.lib.validation import ConfigError, require_int_range, require_range

DEFAULTS = {"warn_failed_ratio": 0.5, "error_failed_ratio": 0.95, "min_rows": 20}
ENV = {"warn_failed_ratio": "LAION_DOWNLOAD_WARN_FAILED_RATIO",
       "error_failed_ratio": "LAION_DOWNLOAD_ERROR_FAILED_RATIO", "min_rows": "LAION_DOWNLOAD_MIN_ROWS"}


def health_thresholds(env: Mapping[str, str]) -> dict[str, Any]:
    """The thresholds, `env` (the settings' environment) overriding DEFAULTS; a bad value fails
    naming the variable."""
    out: dict[str, Any] = dict(DEFAULTS)
    for key, var in ENV.items():
        raw = env.get(var)
        if raw in (None, ""):
            continue
        try:
            out[key] = int(raw) if key == "min_rows" else float(raw)
        except ValueError:
            raise ConfigError(var, raw, "must be a number") from None
    require_range(ENV["warn_failed_ratio"], out["warn_failed_ratio"], 0.0, 1.0)
    require_range(ENV["error_failed_ratio"], out["error_failed_ratio"], 0.0, 1.0)
    require_int_range(ENV["min_rows"], out["min_rows"], 1, 10**12)
    if out["warn_failed_ratio"] > out["error_failed_ratio"]:
        raise ConfigError(ENV["warn_failed_ratio"], out["warn_failed_ratio"],
                          f"must be <= {ENV['error_failed_ratio']} ({out['error_failed_ratio']})")
    return out


# One row per failure reason when the shard's failed share is over the level's threshold.
_RATE_SQL = """
    WITH t AS (SELECT count(*) FILTER (WHERE status = 'ok') AS ok,
                      count(*) FILTER (WHERE status = 'failed') AS failed FROM downloads)
    SELECT d.reason, count(*) AS rows, t.ok AS ok_rows, t.failed AS failed_rows,
           round(t.failed / (t.ok + t.failed), 4) AS failed_share
    FROM downloads d, t
    WHERE d.status = 'failed' AND t.failed >= {min_rows}
      AND t.failed >= {ratio} * (t.ok + t.failed)
    GROUP BY d.reason, t.ok, t.failed ORDER BY rows DESC, d.reason
"""

HEALTH_CHECKS: list[SqlCheck] = [
    SqlCheck(
        name="downloads_success_rate_warn",
        description="WARN: at least a share {warn_failed_ratio} of the shard's fetches failed (failed / "
        "(ok + failed), at least {min_rows} failed rows); failing rows = the failure reasons.",
        sql=_RATE_SQL.replace("{ratio}", "{warn_failed_ratio}"),
        params=DEFAULTS,
    ),
    SqlCheck(
        name="downloads_success_rate_error",
        description="ERROR (blocking): at least a share {error_failed_ratio} of the shard's fetches failed, "
        "an outage (network, DNS, a proxy); failing rows = the failure reasons.",
        blocking=True,
        sql=_RATE_SQL.replace("{ratio}", "{error_failed_ratio}"),
        params=DEFAULTS,
    ),
]


def shard_health(status: pa.Table) -> tuple[int, int, dict[str, int]]:
    """(ok rows, failed rows, failed rows by reason) of one status table."""
    st = status.column("status")
    ok = pc.sum(pc.equal(st, "ok")).as_py() or 0
    failed_mask = pc.equal(st, "failed")
    reasons = status.filter(failed_mask).column("reason").value_counts().to_pylist()
    by_reason = {r["values"]: r["counts"] for r in reasons}
    return ok, sum(by_reason.values()), by_reason


def outage_failures(shards: Iterable[tuple[str, pa.Table]], thresholds: Mapping[str, Any] | None = None
                    ) -> list[str]:
    """Why a release must not be published because its downloads failed: [] when healthy, else one
    message such as "downloads: 0 of 980 images downloaded in shards C/00001, C/00002 (failed:
    950 dns_error, 30 timeout)"."""
    th = health_thresholds({}) if thresholds is None else thresholds
    total_ok = total_failed = 0
    bad: list[str] = []
    reasons: dict[str, int] = {}
    for name, status in shards:
        ok, failed, by_reason = shard_health(status)
        total_ok, total_failed = total_ok + ok, total_failed + failed
        for r, n in by_reason.items():
            reasons[r] = reasons.get(r, 0) + n
        if failed >= th["min_rows"] and failed >= th["error_failed_ratio"] * (ok + failed):
            bad.append(name)
    tried = total_ok + total_failed
    if not bad and not (tried and total_failed >= th["min_rows"]
                        and total_failed >= th["error_failed_ratio"] * tried):
        return []
    top = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
    where = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    return [f"downloads: {total_ok} of {tried} images downloaded"
            + (f", outage in shards {where}" if where else "") + f" (failed: {top}); "
            "a release built on failed downloads is not published: fix the network and re-run image_downloads"]


def release_download_failures(st: Any, shard_keys: Iterable[str], thresholds: Mapping[str, Any] | None = None
                              ) -> list[str]:
    """`outage_failures` over the status tables of `shard_keys` that have one in storage `st`."""
    from laion_assets.core.storage.layout import ShardPaths

    def tables():
        for key in shard_keys:
            path = ShardPaths.from_partition_key(key).downloads
            if st.exists(path):
                yield key, st.read_parquet(path, columns=["status", "reason"])
    return outage_failures(tables(), thresholds)
