"""Next-run computation: pure functions of the schedule and the last fire.

Times are seconds on the scheduler's monotonic clock. Nothing here reads a
clock or draws randomness itself (jitter is passed in), so every function is
deterministic and property-tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ("MAX_DELAY", "IntervalSchedule", "next_fixed_slot", "next_run", "retry_delay")

#: Longest delay quiv schedules (about 100 years); larger values are clamped,
#: so huge intervals or backoffs never overflow datetime arithmetic.
MAX_DELAY = 100 * 365.25 * 86400.0


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """An interval schedule. ``anchor`` is the first scheduled run (the grid origin)."""

    interval: float
    fixed: bool
    anchor: float


#: rounding corrections tried before giving up on an unrepresentable grid
_ROUNDING_STEPS = 4


def clamp_delay(seconds: float) -> float:
    """Clamp a delay into ``[0, MAX_DELAY]``."""
    return min(max(seconds, 0.0), MAX_DELAY)


def next_fixed_slot(anchor: float, interval: float, now: float) -> float:
    """The first grid slot ``anchor + k * interval`` (k >= 0) strictly after *now*.

    Missed slots are skipped; the grid never moves, so latency never
    accumulates. Before the anchor (a run outside the schedule, such as
    ``run_task_immediately``, ended before the first scheduled run) the next
    slot is the anchor itself: the scheduled first run is kept.
    """
    steps = (now - anchor) / interval
    if not math.isfinite(steps):  # an interval too small to count in
        return anchor if anchor > now else math.nextafter(now, math.inf)
    k = max(0, math.floor(steps) + 1)
    # Guard against floating-point rounding (or underflow) giving a slot on or
    # before now, or one past the first slot after now. A few steps suffice,
    # unless the interval is below the float resolution at *now*: then the
    # grid cannot be represented and the next run is as soon as possible.
    for _ in range(_ROUNDING_STEPS):
        if k > 0 and anchor + (k - 1) * interval > now:
            k -= 1
        else:
            break
    slot = anchor + k * interval
    for _ in range(_ROUNDING_STEPS):
        if slot > now:
            return slot
        k += 1
        slot = anchor + k * interval
    return slot if slot > now else math.nextafter(now, math.inf)


def next_run(schedule: IntervalSchedule, *, ended: float, jitter: float = 0.0) -> float:
    """When a recurring task runs next, given that its last job ended at *ended*.

    Fixed-interval tasks run on the grid from ``schedule.anchor``; others run
    ``interval`` after the end of the previous run. *jitter* (already drawn,
    ``>= 0``) is added on top and never moves the grid.
    """
    if schedule.fixed:
        base = next_fixed_slot(schedule.anchor, schedule.interval, ended)
    else:
        base = ended + clamp_delay(schedule.interval)
    return base + clamp_delay(jitter)


def retry_delay(backoff: float, attempt: int) -> float:
    """Delay before retry number *attempt* (1-based): ``backoff * 2 ** (attempt - 1)``, clamped."""
    exponent = min(attempt - 1, 1024)
    try:
        return clamp_delay(backoff * math.ldexp(1.0, exponent))
    except OverflowError:
        return MAX_DELAY
