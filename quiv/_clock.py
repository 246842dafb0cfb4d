"""Clocks: the event loop's (the default), and the wall-clock view of a deadline.

The interface is public, :class:`quiv.abc.Clock`; the test clock is
:class:`quiv.testing.FakeClock`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio

from ._backends import ASYNCIO, current_backend
from .abc import Clock

__all__ = ("LEAD", "LoopClock", "WallClock", "as_clock")

#: how long before a task's deadline the timer wakes for it, with the loop's
#: clock: event loops wake up to a millisecond or two late (asyncio rounds its
#: waits up to whole milliseconds), while a worker thread can wait out the
#: rest of the time to a tenth of that before it starts the job
LEAD = 0.0025


class LoopClock:
    """The event loop's monotonic clock (the default): real time, with a lead."""

    lead = LEAD
    real_time = True

    def __init__(self) -> None:
        self._time: Callable[[], float] | None = None

    def now(self) -> float:
        """Return the event loop's current time, in seconds."""
        now = self._time
        if now is None:  # bind to the loop's own clock on first use
            now = self._time = _loop_time()
        return now()

    def wall_time(self) -> float:
        """Return :func:`time.time` (the wall clock, which may jump)."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the loop's clock reaches *deadline* (forever if infinite)."""
        if math.isinf(deadline):
            await anyio.sleep_forever()
        await anyio.sleep_until(deadline)


class _BasicClock:
    """A clock that only tells time and sleeps (``now`` and ``sleep_until``).

    Such clocks were all a clock had to be before :class:`~quiv.abc.Clock`
    declared :attr:`lead`, :attr:`real_time` and :meth:`wall_time`. They keep
    working: no lead, not real time, and wall time that starts at the moment
    the scheduler got the clock and moves with it.
    """

    lead = 0.0
    real_time = False

    def __init__(self, clock: object) -> None:
        self._clock = clock
        self.now: Callable[[], float] = clock.now  # type: ignore[attr-defined]
        self.sleep_until: Callable[[float], object] = clock.sleep_until  # type: ignore[attr-defined]
        self._offset: float = time.time() - self.now()

    def wall_time(self) -> float:
        return self.now() + self._offset


def as_clock(clock: object) -> Clock:
    """*clock* as a full :class:`~quiv.abc.Clock` (see :class:`_BasicClock`)."""
    if isinstance(clock, Clock):
        return clock
    return _BasicClock(clock)  # type: ignore[return-value]


class WallClock:
    """Turns deadlines on a scheduler's clock into wall-clock timestamps.

    A deadline's wall-clock form is ``deadline + offset``, the offset being
    ``clock.wall_time() - clock.now()``. It is measured once, so the
    ``next_run_at`` of a task reads the same every time it is read, and
    measured again whenever it has moved by more than :attr:`RESYNC` seconds:
    the wall clock was set, or the machine slept. (A test clock's wall time
    moves with its own time, so its offset never moves.)
    """

    #: how far the wall clock may move against the scheduler's before it is followed
    RESYNC = 1.0

    __slots__ = ("_clock", "_offset")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._offset = clock.wall_time() - clock.now()

    def timestamp(self, deadline: float) -> float:
        """The POSIX timestamp at which the clock reaches *deadline*."""
        offset = self._clock.wall_time() - self._clock.now()
        if abs(offset - self._offset) > self.RESYNC:
            self._offset = offset
        return deadline + self._offset


def _loop_time() -> Callable[[], float]:
    """The current event loop's time function, without per-call backend lookups."""
    if current_backend() is ASYNCIO:
        import asyncio

        return asyncio.get_running_loop().time
    return anyio.current_time
