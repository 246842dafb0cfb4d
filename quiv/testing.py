"""The testing kit: virtual time, waits for quiet, event capture, eager mode.

:class:`VirtualClock` is a :class:`~quiv.abc.Clock` whose time moves only
when the test says so, and then runs everything that comes due, waiting for
each job to end::

    clock = VirtualClock(datetime(2026, 3, 1, tzinfo=timezone.utc))
    async with AsyncQuiv(clock=clock) as scheduler:
        with capture_events(scheduler) as events:
            await scheduler.add_task("tick", tick, interval=60)
            await clock.advance(3600)
        events.assert_ran("tick", times=61)

:func:`run_until_idle` waits until nothing is due now and no handler is at
work; :func:`capture_events` records the scheduler's events, with assertions
over them (:class:`EventLog`); :func:`eager_mode` makes a job added during a
request run to its end before the request returns. The pytest plugin (loaded
by itself with quiv installed) has the fixtures ``quiv_clock``,
``quiv_scheduler`` and ``quiv_sync_scheduler``. :class:`FakeClock`, the
older test clock, moves time without waiting for anything.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import anyio

from ._testkit.clock import DEFAULT_START, VirtualClock
from ._testkit.eager import eager_mode
from ._testkit.history import CapturedEvent, EventLog, capture_events
from ._testkit.idle import run_until_idle

__all__ = (
    "DEFAULT_START",
    "CapturedEvent",
    "EventLog",
    "FakeClock",
    "VirtualClock",
    "capture_events",
    "eager_mode",
    "run_until_idle",
)


class FakeClock:
    """A clock that moves only when told to: for tests.

    ``await clock.advance(seconds)`` moves time forward and wakes every sleeper
    whose deadline has passed. It must be used from the scheduler's own loop.

    Its wall time starts at the real wall-clock time, to the whole second,
    when it is first asked for it (when the scheduler starts) and moves only
    with the fake time (and :meth:`jump_wall`), so
    a task due 3,600 fake seconds after the start shows a ``next_run_at`` one
    hour after the start, however long the test really took.

    :param start: the fake time to start at (seconds)
    """

    #: deadlines are met exactly by the timer: no lead
    lead: float = 0.0
    #: fake seconds do not pass with :func:`time.monotonic`
    real_time: bool = False

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._wall_offset: float | None = None
        self._moved = anyio.Event()

    def now(self) -> float:
        """Return the fake time: the start plus every :meth:`advance` so far."""
        return self._now

    def wall_time(self) -> float:
        """Return the wall-clock time of the first call plus the fake time passed since."""
        if self._wall_offset is None:  # a whole second: wall times stay exact
            self._wall_offset = math.floor(time.time()) - self._now
        return self._now + self._wall_offset

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the fake time to *deadline*."""
        while self._now < deadline:
            await self._moved.wait()

    def jump_wall(self, delta: timedelta | float) -> None:
        """Step the wall clock by *delta* (seconds or a timedelta), as NTP or a host's suspend would.

        The fake monotonic time does not move, and nothing is woken: like a
        real clock step, the scheduler notices it the next time it looks at
        the wall clock (at the latest a minute later, while a wall-clock run
        is armed). Negative steps go back in time.
        """
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
        if not isinstance(seconds, (int, float)) or seconds != seconds:
            raise ValueError(f"delta must be a number of seconds or a timedelta, got {delta!r}")
        self.wall_time()  # fix the offset first
        assert self._wall_offset is not None
        self._wall_offset += seconds

    async def advance(self, seconds: float) -> None:
        """Move time forward by *seconds* and let sleepers run."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._now += seconds
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
        await anyio.lowlevel.checkpoint()


# Show the kit's names as ``quiv.testing.X`` in reprs, tracebacks and the docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("quiv._"):
        _obj.__module__ = __name__
del _name, _obj
