"""Settings checked where they are read: one error type, one message shape naming the setting.

Every config dataclass in the core and every Dagster config/resource validates its fields with these,
so a bad value fails at load (or at the start of a run) with `<setting>=<value>: <allowed range>`,
never as an unrelated error deep inside a stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A setting outside its allowed range. The message names the setting and what is allowed."""

    def __init__(self, setting: str, value: Any, allowed: str):
        self.setting, self.value, self.allowed = setting, value, allowed
        super().__init__(f"{setting}={value!r}: {allowed}")


def require_finite(setting: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(setting, value, "must be a finite number")
    return value


def require_range(
    setting: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """`lo <= value <= hi` (either end open with lo_open/hi_open, either end None for unbounded)."""
    require_finite(setting, value)
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        left = "unbounded" if lo is None else f"{'(' if lo_open else '['}{lo}"
        right = "unbounded" if hi is None else f"{hi}{')' if hi_open else ']'}"
        if lo is None:
            allowed = f"must be {'<' if hi_open else '<='} {hi}"
        elif hi is None:
            allowed = f"must be {'>' if lo_open else '>='} {lo}"
        else:
            allowed = f"must be in {left}, {right}"
        raise ConfigError(setting, value, allowed)
    return value


def require_int_range(setting: str, value: int, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(setting, value, "must be an integer")
    return int(require_range(setting, value, lo, hi))


def require_choice(setting: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(setting, value, f"must be one of {', '.join(map(repr, choices))}")
    return value
