"""History retention: validating the setting, pacing the passes, the cutoff."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .._errors import ConfigurationError
from ._records import to_micros

__all__ = ("check_retention", "cutoff_micros", "prune_interval")

#: the lowest integer SQLite can bind; a cutoff below it prunes nothing anyway
_MIN_MICROS = -(2**63)


def check_retention(value: object) -> float:
    """Return *value* as seconds.

    :raises ConfigurationError: unless *value* is a real number >= 0 (``inf`` keeps all)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError.bad_value(
            "history_retention_seconds", value, "a number of seconds >= 0"
        )
    return float(value)


def prune_interval(retention: float) -> float:
    """Seconds between pruning passes: half the retention, between 1 s and 60 s."""
    return min(max(retention / 2, 1.0), 60.0)


def cutoff_micros(retention: float, now: datetime | None) -> int | None:
    """Return the ``ended_at`` (epoch microseconds) before which finished jobs go.

    ``None`` when nothing is ever pruned (an infinite retention).

    :param retention: seconds to keep finished jobs
    :param now: the reference time (default: the current UTC time)
    """
    if math.isinf(retention):
        return None
    reference = to_micros(now if now is not None else datetime.now(timezone.utc))
    assert reference is not None
    return max(reference - round(retention * 1_000_000), _MIN_MICROS)
