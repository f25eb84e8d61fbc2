"""The small shared pieces: CPU allowance, config errors, sample ids."""

import math

import pytest

from laion_assets.core.lib.cpus import _cgroup_quota, available_cpus, cpus_allowed
from laion_assets.core.lib.ids import sample_id
from laion_assets.core.lib.validation import ConfigError, require_choice, require_int_range, require_range


def test_cpus_allowed_takes_the_tightest_limit():
    assert cpus_allowed(affinity=64, quota=2.0, host=64) == 2
    assert cpus_allowed(affinity=4, quota=None, host=64) == 4
    assert cpus_allowed(affinity=None, quota=1.5, host=8) == 2  # a fractional quota rounds up
    assert cpus_allowed(affinity=None, quota=0.1, host=None) == 1
    assert 1 <= available_cpus()


def test_cgroup_quota_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_quota(tmp_path) == 3.0


@pytest.mark.parametrize("value", [2.0, -1.5, math.nan, math.inf, "0.3", True])
def test_require_range_names_the_setting(value):
    with pytest.raises(ConfigError, match=r"^min_similarity="):
        require_range("min_similarity", value, -1.0, 1.0)


def test_require_helpers_accept_good_values():
    assert require_range("timeout_s", 0.5, 0, None, lo_open=True) == 0.5
    with pytest.raises(ConfigError, match="must be > 0"):
        require_range("timeout_s", 0, 0, None, lo_open=True)
    with pytest.raises(ConfigError, match=r"must be in \[1, 65535\]"):
        require_int_range("port", 99999, 1, 65535)
    with pytest.raises(ConfigError, match="must be an integer"):
        require_int_range("port", 1.5, 1, 65535)
    assert require_choice("mode", "a", ("a", "b")) == "a"


def test_sample_id_is_stable_and_positive():
    assert sample_id("https://a/b.jpg", "a cat") == sample_id("https://a/b.jpg", "a cat")
    assert sample_id("https://a/b.jpg", "a cat") != sample_id("https://a/b.jpg", "a dog")
    assert 0 <= sample_id("u", "t") < 2**63
