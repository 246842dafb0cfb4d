"""Helpers for the scheduler-level tests of wall-clock schedules (cron, triggers, run_at).

A :class:`~quiv.testing.FakeClock` is put at a chosen date with
:func:`set_wall` before the scheduler starts; then :func:`drive` runs a task's
fires one by one, checking that nothing runs a moment before each fire.
"""

from __future__ import annotations

from datetime import datetime, timezone

from scheduler_helpers import Recorder, is_idle, settle

from quiv import AsyncQuiv, Event
from quiv.testing import FakeClock

UTC = timezone.utc
#: how far ahead of a fire the "nothing ran yet" check looks (fake seconds)
BEFORE = 1e-3
#: how far past a fire the clock is moved to make it due: float rounding of
#: POSIX timestamps (~2e-7 s) must not leave the deadline a hair ahead
PAST = 1e-4


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def set_wall(clock: FakeClock, when: datetime) -> None:
    """Put *clock*'s wall clock at *when* (without moving its monotonic time)."""
    clock.jump_wall(when.timestamp() - clock.wall_time())


def wall(clock: FakeClock) -> datetime:
    """*clock*'s wall time, aware UTC, to the millisecond (see :data:`PAST`)."""
    return datetime.fromtimestamp(round(clock.wall_time(), 3), UTC)


class Fires:
    """A handler that records the fake wall time of each of its runs."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.at: list[datetime] = []

    def __call__(self) -> None:
        self.at.append(wall(self.clock))


async def advance_wall(clock: FakeClock, when: datetime) -> None:
    """Move *clock* forward (monotonic and wall alike) until its wall time is *when*."""
    await clock.advance(max(0.0, when.timestamp() - clock.wall_time()))
    await settle()


async def next_run(scheduler: AsyncQuiv, task_id: str) -> datetime:
    task = await scheduler.get_task(task_id)
    assert task.next_run_at is not None, task
    return task.next_run_at


async def run_next(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, task_id: str
) -> datetime:
    """Run *task_id*'s next fire: nothing runs a moment before it, one job at it.

    Return the fire (the task's ``next_run_at`` before the run).
    """
    fire = await next_run(scheduler, task_id)
    done = recorder.count(Event.JOB_COMPLETED, task_id=task_id)
    await clock.advance(fire.timestamp() - clock.wall_time() - BEFORE)
    await settle()
    assert recorder.count(Event.JOB_STARTED, task_id=task_id) == done, f"ran before {fire}"
    assert await is_idle(scheduler, task_id), f"ran before {fire}"
    await clock.advance(BEFORE + PAST)
    await recorder.wait_count(Event.JOB_COMPLETED, done + 1, task_id=task_id)
    return fire


async def drive(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, task_id: str, until: datetime
) -> list[datetime]:
    """Run *task_id*'s fires one by one (see :func:`run_next`) up to *until*; return them."""
    fires = []
    while await next_run(scheduler, task_id) <= until:
        fires.append(await run_next(scheduler, clock, recorder, task_id))
    return fires
