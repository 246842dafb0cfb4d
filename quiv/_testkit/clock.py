"""VirtualClock: virtual time for tests, honest about the handlers that run in it.

Time moves only when a test says so, and then only as far as the work in
flight allows: :meth:`VirtualClock.advance` steps from one event to the next
(a task's next run, a job's timeout, a handler's virtual sleep) and, at each
step, waits in real time until the scheduler is quiet again (see
:mod:`quiv._testkit.settle`). A handler that takes 0.3 s of real time is
never timed out by a 5 s virtual timeout: virtual time does not move while it
runs.

The scheduler tells the clock about itself: at its start the engine is
attached (``VirtualClock._attach``), which also gives the clock the
scheduler's loop, where :meth:`~VirtualClock.advance` must run.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.lowlevel import EventLoopToken, current_token

from .._checks import check_datetime, check_number
from .._errors import ConfigurationError
from .._xthread.loops import call_soon
from .settle import describe_busy, settle

if TYPE_CHECKING:
    from .._core.engine import Engine

__all__ = ("DEFAULT_START", "VirtualClock")

#: where a VirtualClock starts when given no start: a fixed moment, so a test
#: of a weekday schedule passes on every day of the week (a Thursday, in UTC)
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)

#: how long advance() waits, in real seconds, for the handlers it runs
ADVANCE_TIMEOUT = 30.0


def _seconds(value: object, name: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if not seconds >= minimum:
            raise ConfigurationError.bad_value(name, value, f"a timedelta >= {minimum:g} s")
        return seconds
    try:
        return check_number(value, name, minimum=minimum)
    except ConfigurationError:
        raise ConfigurationError.bad_value(
            name, value, f"a number of seconds >= {minimum:g} or a timedelta"
        ) from None


class VirtualClock:
    """A :class:`~quiv.abc.Clock` for tests: virtual time that moves only when told.

    Monotonic and wall time move together, from *start*. Pass it as
    ``clock=`` to :class:`~quiv.AsyncQuiv` or :class:`~quiv.Quiv`::

        clock = VirtualClock(datetime(2026, 3, 1, tzinfo=timezone.utc))
        async with AsyncQuiv(clock=clock, timezone="Europe/Berlin") as scheduler:
            await scheduler.add_task("nightly", nightly, cron="30 2 * * *")
            await clock.advance(timedelta(days=30))  # 30 runs, in milliseconds

    :meth:`advance` and :meth:`advance_to` run everything that comes due on
    the way, in order, and wait (in real time) for each job to end, and for
    the work those jobs schedule, up to the target time. Handlers run for
    real, on worker threads or worker loops, as in production; their own
    :func:`time.sleep` or :func:`anyio.sleep` is real time. A handler that
    should wait in virtual time calls :meth:`quiv.JobContext.sleep` (in an
    async handler, :meth:`~quiv.JobContext.sleep_async`).

    One clock serves one scheduler at a time (or a :class:`~quiv.Quiv`
    started again). Its :meth:`advance` runs on that scheduler's loop; from
    other threads (sync tests of a ``Quiv``) use :meth:`advance_blocking`.

    :param start: the wall-clock time the clock shows first (aware; naive
        means UTC); default :data:`DEFAULT_START`, 2026-01-01 00:00 UTC
    :raises ConfigurationError: if *start* is not a datetime
    """

    #: deadlines are met exactly: no lead
    lead: float = 0.0
    #: virtual seconds do not pass with :func:`time.monotonic`
    real_time: bool = False

    def __init__(self, start: datetime | None = None) -> None:
        self._start = DEFAULT_START if start is None else check_datetime(start, "start")
        self._start_ts = self._start.timestamp()
        self._now = 0.0
        #: how far jump_wall() moved the wall clock, in seconds
        self._jumped = 0.0
        #: the deadlines of the loop's sleepers (the timer task's among them)
        self._deadlines: list[float] = []
        self._moved: anyio.Event | None = None
        self._lock = threading.Lock()
        #: handlers asleep on this clock: key -> (deadline, job id, wake)
        self._sleepers: dict[int, tuple[float, str, Callable[[], object]]] = {}
        self._keys = itertools.count()
        self._pokes: list[Callable[[], object]] = []
        self._engines: list[Engine] = []
        self._token: EventLoopToken | None = None
        self._thread: int | None = None

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.wall_now().isoformat()})"

    # -- the Clock protocol ------------------------------------------------------

    def now(self) -> float:
        """The virtual monotonic time, in seconds (``0.0`` at the start)."""
        return self._now

    def wall_time(self) -> float:
        """The POSIX timestamp of the virtual wall clock."""
        return self._start_ts + self._now + self._jumped

    async def sleep_until(self, deadline: float) -> None:
        """Wait until virtual time reaches *deadline* (forever if infinite)."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        self._deadlines.append(deadline)
        try:
            while self._now < deadline:
                if self._moved is None:
                    self._moved = anyio.Event()
                await self._moved.wait()
        finally:
            self._deadlines.remove(deadline)

    # -- telling and moving time --------------------------------------------------

    def wall_now(self) -> datetime:
        """The virtual wall-clock time, aware UTC (exact to the microsecond)."""
        return self._start + timedelta(seconds=self._now + self._jumped)

    def jump_wall(self, delta: timedelta | float) -> None:
        """Step the wall clock alone by *delta*, as an NTP step or a suspended host would.

        Monotonic time stays, and nothing is woken: like a real clock step,
        the scheduler notices it the next time it looks at the wall clock (at
        the latest a minute later, while a wall-clock run is armed), so the
        next :meth:`advance` by a minute or more runs what came due. Negative
        steps go back in time.

        :param delta: seconds, or a :class:`~datetime.timedelta`
        :raises ConfigurationError: if *delta* is not a finite number or a timedelta
        """
        self._jumped += _seconds(delta, "delta", minimum=-math.inf)

    async def advance(self, delta: timedelta | float, *, timeout: float = ADVANCE_TIMEOUT) -> None:
        """Move virtual time forward by *delta*, running everything that comes due.

        Each due run, timeout and virtual sleep happens at its own time, in
        order; at each, it waits in real time until the jobs running end (or
        wait on this clock again), and goes on with what they scheduled.

        :param delta: seconds, or a :class:`~datetime.timedelta` (>= 0)
        :param timeout: real seconds to wait for the handlers, all steps together
        :raises ConfigurationError: for a negative or invalid *delta*, or when
            not awaited on the scheduler's loop
        :raises TimeoutError: if handlers are still at work after *timeout*
            (the message names them)
        """
        seconds = _seconds(delta, "delta")
        limit = check_number(timeout, "timeout", exclusive=True, allow_inf=True)
        await self._run_to(self._now + seconds, limit)

    async def advance_to(self, when: datetime, *, timeout: float = ADVANCE_TIMEOUT) -> None:
        """Move virtual time forward until the wall clock shows *when* (see :meth:`advance`).

        :param when: a datetime (naive means UTC), not before :meth:`wall_now`
        :raises ConfigurationError: for a time in the past, or not a datetime
        """
        target = check_datetime(when, "when")
        seconds = (target - self.wall_now()).total_seconds()
        if seconds < 0:
            raise ConfigurationError.bad_value(
                "when", when, f"a time no earlier than the clock's {self.wall_now().isoformat()}"
            )
        limit = check_number(timeout, "timeout", exclusive=True, allow_inf=True)
        await self._run_to(self._now + seconds, limit)

    def advance_blocking(
        self, delta: timedelta | float, *, timeout: float = ADVANCE_TIMEOUT
    ) -> None:
        """:meth:`advance` from a plain thread (a sync test of a :class:`~quiv.Quiv`).

        Runs it on the scheduler's loop and blocks until it is done.

        :raises ConfigurationError: if called on the scheduler's loop thread
            (``await advance()`` there)
        """
        self._blocking(functools.partial(self.advance, delta, timeout=timeout))

    def advance_to_blocking(self, when: datetime, *, timeout: float = ADVANCE_TIMEOUT) -> None:
        """:meth:`advance_to` from a plain thread (see :meth:`advance_blocking`)."""
        self._blocking(functools.partial(self.advance_to, when, timeout=timeout))

    def _blocking(self, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._thread == threading.get_ident():
            raise ConfigurationError(
                "advance_blocking() was called on the scheduler's loop; await advance() there"
            )
        token = self._token
        if token is None or not self._running_engines():  # no loop to run it on: nothing can be due
            anyio.run(step)
            return
        anyio.from_thread.run(step, token=token)

    # -- the scheduler's side -----------------------------------------------------

    def _attach(self, engine: Engine) -> None:
        """A scheduler on this clock starts (its loop, its engine): advance() waits for it."""
        self._engines = [*self._running_engines(), engine]
        self._token = current_token()
        self._thread = threading.get_ident()

    def _running_engines(self) -> list[Engine]:
        """The engines of the running schedulers on this clock."""
        return [engine for engine in self._engines if not engine.stopping]

    def _add_sleeper(self, job_id: str, seconds: float, wake: Callable[[], object]) -> int:
        """Any thread: a handler of *job_id* sleeps *seconds*; *wake* ends its sleep.

        Return a key for :meth:`_remove_sleeper`. The scheduler's loop is told,
        so an :meth:`advance` waiting for the job may go on.
        """
        with self._lock:
            key = next(self._keys)
            self._sleepers[key] = (self._now + seconds, job_id, wake)
        token = self._token
        if token is not None:
            call_soon(token, self._poke)
        return key

    def _remove_sleeper(self, key: int) -> None:
        """Any thread: the sleep of *key* is over (woken, or cancelled)."""
        with self._lock:
            self._sleepers.pop(key, None)

    def _waiting_jobs(self) -> set[str]:
        """The ids of the jobs with a handler asleep on this clock."""
        with self._lock:
            return {job_id for _, job_id, _ in self._sleepers.values()}

    def _subscribe(self, poke: Callable[[], object]) -> Callable[[], None]:
        """Call *poke* (on the loop) when a handler starts to sleep; return the unsubscribe."""
        self._pokes.append(poke)
        return lambda: self._pokes.remove(poke)

    def _poke(self) -> None:
        for poke in list(self._pokes):
            poke()

    async def _settle(self) -> None:
        """Wait until the schedulers on this clock are quiet (see :mod:`~quiv._testkit.settle`)."""
        await settle(self._running_engines, self._waiting_jobs, self._subscribe)

    def _busy(self) -> list[str]:
        """The jobs at work that do not wait on this clock (for error messages)."""
        waiting = self._waiting_jobs()
        engines = self._running_engines()
        return [name for engine in engines for name in describe_busy(engine, waiting)]

    # -- stepping -------------------------------------------------------------------

    async def _run_to(self, target: float, timeout: float) -> None:
        if (
            self._thread is not None
            and self._running_engines()
            and self._thread != threading.get_ident()
        ):
            raise ConfigurationError(
                "await VirtualClock.advance() on the scheduler's loop; "
                "from another thread, call advance_blocking()"
            )
        try:
            with anyio.fail_after(timeout):
                while True:
                    await self._settle()
                    step = self._next_event()
                    if step > target:
                        break
                    self._move(step)
                self._move(target)
                await self._settle()
        except TimeoutError:
            raise TimeoutError(
                f"VirtualClock: handlers still at work after {timeout:g} s of real time, "
                f"at {self.wall_now().isoformat()}: {', '.join(self._busy()) or 'none'}"
            ) from None

    def _next_event(self) -> float:
        """The earliest virtual time at which something has work to do."""
        events: list[float] = []
        others = list(self._deadlines)
        for engine in self._running_engines():
            timer = engine.timer
            events.append(timer.next_event())
            if timer.sleeping_until in others:  # the timer's own sleep: next_event() covers it
                others.remove(timer.sleeping_until)
        events += others
        with self._lock:
            events += [deadline for deadline, _, _ in self._sleepers.values()]
        return min(events, default=math.inf)

    def _move(self, to: float) -> None:
        """Set virtual time to *to* (never back) and wake whoever is due."""
        if to > self._now:
            self._now = to
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()
        with self._lock:
            now = self._now
            due = [key for key, (deadline, _, _) in self._sleepers.items() if deadline <= now]
            wakes = [self._sleepers.pop(key)[2] for key in due]
        for wake in wakes:
            wake()
