"""The clock seam: the timer never reads time directly.

Deadlines are seconds on a monotonic clock. The default clock is the event
loop's own (:func:`anyio.current_time`); tests inject :class:`FakeClock` to
move time by hand without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio

from ._backends import ASYNCIO, current_backend

__all__ = ("Clock", "FakeClock", "LoopClock", "WallClock")


@runtime_checkable
class Clock(Protocol):
    """What the scheduler needs from a clock."""

    def now(self) -> float:
        """Return the current time in seconds on a monotonic scale."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until :meth:`now` reaches *deadline* (cancellable)."""
        ...


class LoopClock:
    """The event loop's monotonic clock (the default)."""

    def __init__(self) -> None:
        self._time: Callable[[], float] | None = None

    def now(self) -> float:
        """Return the event loop's current time, in seconds."""
        time = self._time
        if time is None:  # bind to the loop's own clock on first use
            time = self._time = _loop_time()
        return time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the loop's clock reaches *deadline* (forever if infinite)."""
        if math.isinf(deadline):
            await anyio.sleep_forever()
        await anyio.sleep_until(deadline)


class FakeClock:
    """A clock that moves only when told to: for tests.

    ``await clock.advance(seconds)`` moves time forward and wakes every sleeper
    whose deadline has passed. It must be used from the scheduler's own loop.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._moved = anyio.Event()

    def now(self) -> float:
        """Return the fake time: the start plus every :meth:`advance` so far."""
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the fake time to *deadline*."""
        while self._now < deadline:
            await self._moved.wait()

    async def advance(self, seconds: float) -> None:
        """Move time forward by *seconds* and let sleepers run."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._now += seconds
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
        await anyio.lowlevel.checkpoint()


class WallClock:
    """Turns deadlines on a scheduler's clock into wall-clock timestamps.

    A deadline's wall-clock form is ``deadline + offset``, the offset being
    ``time.time() - clock.now()``. It is measured once, so the ``next_run_at``
    of a task reads the same every time it is read. With the loop's clock the
    offset is measured again whenever it has moved by more than
    :attr:`RESYNC` seconds: the wall clock was set, or the machine slept. Any
    other clock (a :class:`FakeClock`) keeps the offset it started with, so
    its time maps onto the wall clock from the moment the scheduler started.
    """

    #: how far the wall clock may move against the loop's before it is followed
    RESYNC = 1.0

    __slots__ = ("_clock", "_follow", "_offset")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._follow = isinstance(clock, LoopClock)
        self._offset = time.time() - clock.now()

    def timestamp(self, deadline: float) -> float:
        """The POSIX timestamp at which the clock reaches *deadline*."""
        if self._follow:
            offset = time.time() - self._clock.now()
            if abs(offset - self._offset) > self.RESYNC:
                self._offset = offset
        return deadline + self._offset


def _loop_time() -> Callable[[], float]:
    """The current event loop's time function, without per-call backend lookups."""
    if current_backend() is ASYNCIO:
        import asyncio

        return asyncio.get_running_loop().time
    return anyio.current_time
