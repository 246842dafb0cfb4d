"""Next-run computation: pure functions, unit and property tests."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quiv._triggers.interval import (
    MAX_DELAY,
    IntervalSchedule,
    clamp_delay,
    next_fixed_slot,
    next_run,
    retry_delay,
)

anchors = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
intervals = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False)
offsets = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)


def test_next_fixed_slot_examples() -> None:
    assert next_fixed_slot(0.0, 10.0, 0.0) == 10.0
    assert next_fixed_slot(0.0, 10.0, 3.0) == 10.0
    assert next_fixed_slot(0.0, 10.0, 9.999) == 10.0
    assert next_fixed_slot(0.0, 10.0, 10.0) == 20.0  # strictly after now
    assert next_fixed_slot(0.0, 10.0, 25.0) == 30.0  # slot 20 was missed: skipped
    assert next_fixed_slot(5.0, 10.0, 1000.0) == 1005.0


def test_next_fixed_slot_before_the_anchor_is_the_anchor() -> None:
    """The grid starts at the anchor: a run before it (run_task_immediately) keeps that slot."""
    assert next_fixed_slot(100.0, 10.0, 0.0) == 100.0
    assert next_fixed_slot(100.0, 10.0, 99.5) == 100.0
    assert next_fixed_slot(100.0, 10.0, 100.0) == 110.0


@given(anchors, intervals, offsets)
def test_next_fixed_slot_is_the_first_grid_slot_after_now(
    anchor: float, interval: float, offset: float
) -> None:
    now = anchor + offset
    slot = next_fixed_slot(anchor, interval, now)
    assert slot > now
    k = round((slot - anchor) / interval)
    assert k >= 0
    assert math.isclose(slot, anchor + k * interval, rel_tol=1e-12, abs_tol=1e-6)
    # minimal: the previous grid slot (if any) is not after now
    if k >= 1:
        assert anchor + (k - 1) * interval <= now


@given(anchors, intervals, offsets, st.floats(min_value=0, max_value=1e6))
def test_next_fixed_slot_does_not_drift(
    anchor: float, interval: float, offset: float, lateness: float
) -> None:
    """However late a run ends, the next slot stays on the original grid."""
    now = anchor + offset
    late = now + lateness
    assert next_fixed_slot(anchor, interval, late) >= next_fixed_slot(anchor, interval, now)


def test_next_run_fixed_and_not_fixed() -> None:
    fixed = IntervalSchedule(interval=10.0, fixed=True, anchor=0.0)
    after_end = IntervalSchedule(interval=10.0, fixed=False, anchor=0.0)
    assert next_run(fixed, ended=13.0) == 20.0
    assert next_run(after_end, ended=13.0) == 23.0
    assert next_run(fixed, ended=13.0, jitter=2.5) == 22.5
    assert next_run(after_end, ended=13.0, jitter=2.5) == 25.5


@given(anchors, intervals, offsets, st.floats(min_value=0, max_value=1e4), st.booleans())
def test_next_run_is_after_the_end_and_within_the_jitter(
    anchor: float, interval: float, offset: float, jitter: float, fixed: bool
) -> None:
    ended = anchor + offset
    schedule = IntervalSchedule(interval=interval, fixed=fixed, anchor=anchor)
    plain = next_run(schedule, ended=ended)
    jittered = next_run(schedule, ended=ended, jitter=jitter)
    assert plain > ended
    assert plain <= jittered <= plain + jitter + 1e-6 * max(1.0, abs(plain))
    if not fixed:
        assert math.isclose(plain, ended + interval, rel_tol=1e-12, abs_tol=1e-9)


def test_huge_interval_is_clamped() -> None:
    schedule = IntervalSchedule(interval=1e300, fixed=False, anchor=0.0)
    assert next_run(schedule, ended=0.0) == MAX_DELAY


def test_retry_delay_examples() -> None:
    assert retry_delay(30.0, 1) == 30.0
    assert retry_delay(30.0, 2) == 60.0
    assert retry_delay(30.0, 3) == 120.0
    assert retry_delay(0.5, 4) == 4.0
    assert retry_delay(1.0, 10_000) == MAX_DELAY
    assert retry_delay(1e308, 5) == MAX_DELAY


@given(
    st.floats(min_value=1e-9, max_value=1e300, allow_nan=False),
    st.integers(min_value=1, max_value=5000),
)
def test_retry_delay_is_monotone_and_clamped(backoff: float, attempt: int) -> None:
    delay = retry_delay(backoff, attempt)
    following = retry_delay(backoff, attempt + 1)
    assert 0.0 <= delay <= MAX_DELAY
    assert delay <= following
    exact = backoff * 2.0 ** (attempt - 1) if attempt <= 1000 else math.inf
    assert delay == min(exact, MAX_DELAY)


@given(st.floats(allow_nan=False))
def test_clamp_delay(seconds: float) -> None:
    clamped = clamp_delay(seconds)
    assert 0.0 <= clamped <= MAX_DELAY
    if 0 <= seconds <= MAX_DELAY:
        assert clamped == seconds


@pytest.mark.parametrize("attempt", [1, 2, 3, 60])
def test_retry_delay_is_exponential(attempt: int) -> None:
    assert retry_delay(2.0, attempt) == min(2.0 * 2 ** (attempt - 1), MAX_DELAY)


def test_next_fixed_slot_survives_underflow() -> None:
    # (now - anchor) / interval underflows to -0.0, and floor(-0.0) + 1 is 1
    assert next_fixed_slot(0.0, 2.0, -5e-324) == 0.0
    assert next_fixed_slot(0.0, 2.0, 5e-324) == 2.0


@pytest.mark.parametrize("interval", [1e-300, 5e-324, 1e-12, 1e-11])
def test_next_fixed_slot_with_an_interval_below_float_resolution(interval: float) -> None:
    """anchor + k * interval stops moving: the search must end (it used to spin forever)."""
    now = 1e5 + 0.001
    slot = next_fixed_slot(1e5, interval, now)
    assert now < slot <= now + max(interval, 1e-9)


@given(
    st.floats(min_value=-1e9, max_value=1e9),
    st.floats(min_value=5e-324, max_value=1e-3),
    st.floats(min_value=0, max_value=1e3),
)
def test_next_fixed_slot_always_ends_after_now(
    anchor: float, interval: float, offset: float
) -> None:
    now = anchor + offset
    slot = next_fixed_slot(anchor, interval, now)
    assert slot > now
    assert slot - now <= interval + 4 * math.ulp(max(abs(now), abs(anchor), 1.0))
