"""Range checks for `dg.Config` and resource fields, with the core's one message shape.

`pydantic.Field(ge=..., le=...)` works on Dagster config (checked on 1.13.27), but it lets NaN
fail with a misleading bound ("less than or equal to 1" for nan) and names only the bound that was
crossed. These validators call `core/lib/validation.py` instead, so a bad value fails when the run
starts (run config) or when definitions load (resources built in code) with
`<setting>=<value>: <allowed range>`. Use: `_check_x = ranged("x", 0, 1)` in the class body.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import field_validator

from laion_assets.core.lib.validation import ConfigError, require_int_range, require_range


def _raise_for(cls: type, err: ConfigError) -> Any:
    """Resources keep `ConfigError` (they fail at definitions load). An op's run config fails its step
    with `Failure(allow_retries=False)`: a bad setting is not transient, so the shard assets'
    `RetryPolicy` must not retry it with backoff (pydantic would also wrap a ValueError, losing it)."""
    if isinstance(cls, type) and issubclass(cls, dg.ConfigurableResource):
        raise err
    raise dg.Failure(description=str(err), allow_retries=False) from err


def ranged(field: str, lo: float | None = None, hi: float | None = None, *, integer: bool = False,
           lo_open: bool = False, hi_open: bool = False) -> Any:
    """A field validator: `field` within [lo, hi] (open ends with lo_open/hi_open); None passes."""

    def check(cls: type, value: Any) -> Any:
        if value is None:
            return value
        try:
            if integer:
                return require_int_range(field, value, None if lo is None else int(lo), None if hi is None else int(hi))
            return require_range(field, value, lo, hi, lo_open=lo_open, hi_open=hi_open)
        except ConfigError as err:
            return _raise_for(cls, err)

    return field_validator(field)(check)


def build_checked(setting: str, build: Any) -> Any:
    """Call `build`; an unknown option name or a core ValueError becomes one ConfigError naming it."""
    try:
        return build()
    except ConfigError:
        raise
    except TypeError as exc:  # an option the core config has no field for
        raise ValueError(f"{setting}: {str(exc).split('got ')[-1]} (not a setting of this stage)") from None
    except ValueError as exc:
        raise ValueError(f"{setting}: {exc}") from None
