"""The trigger seam: ``add_task(trigger=...)`` with quiv's triggers and a user's own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from scheduler_helpers import WAIT, Gates, Recorder

from quiv import AsyncQuiv, ConfigurationError, Event, JobStatus, Quiv
from quiv.abc import Trigger
from quiv.testing import FakeClock
from quiv.triggers import DateTrigger, IntervalTrigger, OnceTrigger

pytestmark = pytest.mark.anyio

UTC = timezone.utc


@dataclass(frozen=True)
class Every:
    """A user's trigger: every *seconds* seconds of wall time, on a grid from *origin*."""

    origin: datetime
    seconds: float

    def next_fire(self, after: datetime) -> datetime | None:
        steps = int((after - self.origin).total_seconds() // self.seconds) + 1
        return self.origin + timedelta(seconds=steps * self.seconds)


@dataclass(frozen=True)
class Fixed:
    """A user's trigger that fires at the given times, then no more."""

    fires: tuple[datetime, ...]

    def next_fire(self, after: datetime) -> datetime | None:
        return next((fire for fire in self.fires if fire > after), None)


class Naive:
    """A faulty trigger: its fires have no time zone."""

    def next_fire(self, after: datetime) -> datetime | None:
        return datetime(2999, 1, 1)


class Broken:
    """A faulty trigger: it raises."""

    def next_fire(self, after: datetime) -> datetime | None:
        raise ValueError("no idea")


class Backwards:
    """A faulty trigger: it goes back in time."""

    def next_fire(self, after: datetime) -> datetime | None:
        return after - timedelta(seconds=1)


def test_the_builtin_triggers_say_when_they_fire() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    grid = IntervalTrigger(60, start=start)
    assert grid.next_fire(start - timedelta(hours=1)) == start
    assert grid.next_fire(start) == start + timedelta(seconds=60)
    assert grid.next_fire(start + timedelta(seconds=61)) == start + timedelta(seconds=120)
    assert IntervalTrigger(5).next_fire(start) == start + timedelta(seconds=5)
    assert OnceTrigger().next_fire(start) is None
    assert DateTrigger(start).next_fire(start - timedelta(seconds=1)) == start
    assert DateTrigger(start).next_fire(start) is None
    assert DateTrigger(datetime(2026, 1, 1)).run_at == start  # naive means UTC
    for trigger in (grid, OnceTrigger(), DateTrigger(start)):
        assert isinstance(trigger, Trigger)
    with pytest.raises(ConfigurationError, match="seconds"):
        IntervalTrigger(0)


async def test_interval_and_once_triggers_mean_their_parameters(clock: FakeClock) -> None:
    async with AsyncQuiv(clock=clock) as s:
        every = await s.add_task("every", lambda: None, trigger=IntervalTrigger(10), delay=10)
        once = await s.add_task("once", lambda: None, trigger=OnceTrigger())
        task = await s.get_task(every)
        assert (task.interval_seconds, task.fixed_interval, task.run_once) == (10.0, True, False)
        assert (await s.wait_for_task(once, timeout=WAIT)).status is JobStatus.COMPLETED
        at = datetime.now(UTC) + timedelta(hours=1)
        dated = await s.add_task("dated", lambda: None, trigger=DateTrigger(at))
        assert (await s.get_task(dated)).run_once


async def test_a_users_trigger_drives_the_schedule(clock: FakeClock) -> None:
    start = datetime.fromtimestamp(int(clock.wall_time()), UTC)  # not after the wall time
    trigger = Every(start, 30)
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s, [Event.JOB_COMPLETED])
        task_id = await s.add_task("wall", lambda: None, trigger=trigger)
        task = await s.get_task(task_id)
        assert task.next_run_at is not None
        assert abs(task.next_run_at - (start + timedelta(seconds=30))) < timedelta(seconds=1)
        for n in range(1, 4):
            await clock.advance(30)
            await rec.wait_count(Event.JOB_COMPLETED, n)
        assert rec.count(Event.JOB_COMPLETED) == 3


async def test_a_trigger_with_no_more_fires_ends_its_task(clock: FakeClock) -> None:
    start = datetime.fromtimestamp(int(clock.wall_time()), UTC)  # not after the wall time
    fires = (start + timedelta(seconds=10), start + timedelta(seconds=20))
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s, [Event.JOB_COMPLETED])
        task_id = await s.add_task("twice", lambda: None, trigger=Fixed(fires))
        await clock.advance(10)
        await rec.wait_count(Event.JOB_COMPLETED, 1)
        await clock.advance(10)
        await rec.wait_count(Event.JOB_COMPLETED, 2)
        assert await s.get_all_tasks() == []
        assert len(await s.get_all_jobs(task_id=task_id)) == 2


async def test_missed_fires_make_one_run(clock: FakeClock, gates: Gates) -> None:
    """A job that overran several fires is followed by one catch-up run, not one per fire."""
    start = datetime.fromtimestamp(int(clock.wall_time()), UTC)  # not after the wall time
    gate = gates.new()

    def slow() -> None:
        gate.wait(WAIT)

    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        await s.add_task("slow", slow, trigger=Every(start, 10))
        await clock.advance(10)
        await rec.wait_count(Event.JOB_STARTED, 1)
        await clock.advance(55)  # five more fires pass while the job runs
        gate.set()
        await rec.wait_count(Event.JOB_COMPLETED, 1)
        await rec.wait_count(Event.JOB_STARTED, 2)  # the one catch-up run
        await rec.wait_count(Event.JOB_COMPLETED, 2)
        assert rec.count(Event.JOB_STARTED) == 2
        await clock.advance(10)  # back on the grid
        await rec.wait_count(Event.JOB_STARTED, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 5}, "trigger or interval"),
        ({"run_once": True}, "trigger or run_once"),
        ({"run_at": datetime(2030, 1, 1, tzinfo=UTC)}, "trigger or run_at"),
        ({"fixed_interval": False}, "trigger or fixed_interval"),
    ],
)
async def test_a_trigger_excludes_the_schedule_parameters(
    kwargs: dict[str, object], match: str
) -> None:
    trigger = Every(datetime(2026, 1, 1, tzinfo=UTC), 30)
    async with AsyncQuiv() as s:
        with pytest.raises(ConfigurationError, match=match):
            await s.add_task("t", lambda: None, trigger=trigger, **kwargs)  # type: ignore[arg-type]
        assert await s.get_all_tasks(include_run_once=True) == []


@pytest.mark.parametrize(
    ("trigger", "match"),
    [
        (object(), "trigger"),
        (Every, "trigger"),  # the class, not an instance
        (Fixed(()), "no fire after now"),
        (Naive(), "naive"),
        (Broken(), "no idea"),
        (Backwards(), "after"),
    ],
)
async def test_bad_triggers_are_refused_at_add_task(trigger: object, match: str) -> None:
    async with AsyncQuiv() as s:
        with pytest.raises(ConfigurationError, match=match):
            await s.add_task("t", lambda: None, trigger=trigger)  # type: ignore[arg-type]
        assert await s.get_all_tasks(include_run_once=True) == []


def test_the_sync_face_takes_triggers_too() -> None:
    with Quiv() as s:
        task_id = s.add_task("once", lambda: None, trigger=OnceTrigger())
        assert s.wait_for_task(task_id, timeout=WAIT).status is JobStatus.COMPLETED


class FailsLater:
    """Fires once, then breaks."""

    def __init__(self, first: datetime) -> None:
        self.first = first

    def next_fire(self, after: datetime) -> datetime | None:
        if after < self.first:
            return self.first
        raise ValueError("broken after the first fire")


async def test_a_trigger_that_fails_later_ends_its_schedule_and_says_so(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    start = datetime.fromtimestamp(int(clock.wall_time()), UTC)  # not after the wall time
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s, [Event.JOB_COMPLETED])
        task_id = await s.add_task(
            "flaky", lambda: None, trigger=FailsLater(start + timedelta(seconds=5))
        )
        await clock.advance(5)
        job = await s.wait_for_task(task_id, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED
        await rec.wait_count(Event.JOB_COMPLETED, 1)
        assert await s.get_all_tasks() == []
    assert any("trigger of task 'flaky'" in r.getMessage() and r.exc_info for r in caplog.records)
