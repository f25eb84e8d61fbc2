"""An outage is visible: the per-shard success-rate checks (WARN, ERROR by reason) and the message
that names the cause when a release is blocked."""

import pyarrow as pa
import pytest

from laion_assets.core.download.health import HEALTH_CHECKS, health_thresholds, outage_failures
from laion_assets.core.checks import run_checks
from laion_assets.core.lib.validation import ConfigError


def status(ok: int, failed: dict[str, int], skipped: int = 0) -> pa.Table:
    rows = [("ok", None)] * ok + [("skipped", "robots_txt")] * skipped
    rows += [("failed", r) for r, n in failed.items() for _ in range(n)]
    return pa.table({"key": [str(i) for i in range(len(rows))], "status": [s for s, _ in rows],
                     "reason": [r for _, r in rows]})


def outcomes(table, env=None):
    res = run_checks({"downloads": table}, HEALTH_CHECKS, health_thresholds(env or {}))
    return {o.name: o for o in res}


def test_a_total_outage_fails_both_levels_with_the_reasons():
    out = outcomes(status(0, {"dns_error": 950, "timeout": 30}))
    warn, err = out["downloads_success_rate_warn"], out["downloads_success_rate_error"]
    assert not warn.passed and not err.passed
    assert [r["reason"] for r in err.sample] == ["dns_error", "timeout"] and err.sample[0]["rows"] == 950
    assert HEALTH_CHECKS[1].blocking and not HEALTH_CHECKS[0].blocking


def test_levels_and_thresholds():
    half = outcomes(status(400, {"http_error": 600}, skipped=5000))  # skipped rows are not an outage
    assert not half["downloads_success_rate_warn"].passed and half["downloads_success_rate_error"].passed
    healthy = outcomes(status(900, {"timeout": 100}))
    assert all(o.passed for o in healthy.values())
    tiny = outcomes(status(0, {"timeout": 5}))  # under min_rows failed: no alert on a 5-row shard
    assert all(o.passed for o in tiny.values())
    strict = outcomes(status(900, {"timeout": 100}), {"LAION_DOWNLOAD_WARN_FAILED_RATIO": "0.05"})
    assert not strict["downloads_success_rate_warn"].passed
    with pytest.raises(ConfigError, match="LAION_DOWNLOAD_ERROR_FAILED_RATIO"):
        health_thresholds({"LAION_DOWNLOAD_ERROR_FAILED_RATIO": "lots"})


def test_a_blocked_release_names_the_outage():
    msgs = outage_failures([("CC-MAIN-2024-22/00000", status(0, {"dns_error": 490})),
                            ("CC-MAIN-2024-22/00001", status(0, {"dns_error": 460, "timeout": 30}))])
    assert len(msgs) == 1
    assert msgs[0].startswith("downloads: 0 of 980 images downloaded, outage in shards "
                              "CC-MAIN-2024-22/00000, CC-MAIN-2024-22/00001 (failed: 950 dns_error, 30 timeout)")
    assert outage_failures([("a/1", status(900, {"timeout": 100}))]) == []
