"""Small statistics helpers shared by the runners and the report (stdlib only)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Return the *q*-th percentile (0-100) of *values*, linearly interpolated."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements, with their range."""

    median: float
    low: float
    high: float
    count: int


def spread(values: Sequence[float]) -> Spread:
    """Summarise the repeats of one metric."""
    if not values:
        raise ValueError("spread of an empty sequence")
    return Spread(
        median=float(statistics.median(values)),
        low=float(min(values)),
        high=float(max(values)),
        count=len(values),
    )


def ms_summary(seconds: Sequence[float], prefix: str) -> dict[str, float]:
    """p50/p99/max of durations given in seconds, as ``<prefix>_p50_ms`` etc."""
    millis = [value * 1000.0 for value in seconds]
    return {
        f"{prefix}_p50_ms": percentile(millis, 50),
        f"{prefix}_p99_ms": percentile(millis, 99),
        f"{prefix}_max_ms": max(millis),
    }
