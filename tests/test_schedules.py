"""Wall-clock schedules through the scheduler, on a fake clock put at a chosen date.

Properties of the fires (Hypothesis), wall-clock jumps, misfires and
``misfire_grace``, ``update_task(cron=, trigger=)``, ``preview`` and the
task's fields, and bad input. DST months are in test_schedules_dst.py; the
triggers on their own in test_cron.py, test_calendar_trigger.py and
test_trigger_seam.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_helpers import (
    UTC,
    Fires,
    advance_wall,
    drive,
    next_run,
    run_next,
    set_wall,
    utc,
    wall,
)
from scheduler_helpers import WAIT, Recorder, settle

from quiv import AsyncQuiv, ConfigurationError, Event, JobStatus, Quiv, QuivError, TaskStatus
from quiv._core.timing import WALL_CHECK
from quiv.testing import FakeClock
from quiv.triggers import CronTrigger, IntervalTrigger

START = utc(2025, 6, 2)  # a Monday, far from any DST change


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock whose wall clock reads :data:`START` (overrides conftest's)."""
    clock = FakeClock()
    set_wall(clock, START)
    return clock


@pytest.fixture
async def scheduler(clock: FakeClock) -> AsyncIterator[AsyncQuiv]:
    async with AsyncQuiv(clock=clock, pool_size=2, shutdown_timeout=WAIT) as s:
        yield s


@pytest.fixture
def recorder(scheduler: AsyncQuiv) -> Recorder:
    return Recorder(scheduler)


class Blocking(Fires):
    """Records each run's wall time; the first run blocks until :attr:`gate` is set."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self) -> None:
        super().__call__()
        if len(self.at) == 1:
            self.entered.set()
            self.gate.wait(WAIT * 2)

    async def blocked(self) -> None:
        """Wait until the first run has recorded its wall time and blocks."""
        assert await anyio.to_thread.run_sync(self.entered.wait, WAIT)


# -- Hypothesis: fires through preview() and through runs --------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC"]
#: instants near DST changes of those zones (Santiago changes at local midnight)
CHANGES = [
    utc(2025, 3, 30, 1),
    utc(2025, 10, 26, 1),
    utc(2025, 3, 9, 7),
    utc(2025, 11, 2, 6),
    utc(2025, 4, 5, 15),
    utc(2025, 10, 4, 15, 30),
    utc(2025, 4, 6, 3),
    utc(2025, 9, 7, 4),
]

fixed_time = st.builds("{} {} * * *".format, st.integers(0, 59), st.integers(0, 23))
sub_hourly = st.sampled_from(["*/5", "*/10", "*/15", "*/20", "*/30", "0", "45"]).map(
    "{} * * * *".format
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    fixed=st.booleans(),
    data=st.data(),
    change=st.sampled_from(CHANGES),
)
async def test_fires_increase_and_exist_in_their_zone(
    zone: str, fixed: bool, data: st.DataObject, change: datetime
) -> None:
    expression = data.draw(fixed_time if fixed else sub_hourly, label="expression")
    span = 2 * 86400 if fixed else 3 * 3600
    offset = data.draw(st.integers(-span, span // 2), label="offset")
    start = change + timedelta(seconds=offset, microseconds=data.draw(st.integers(0, 999_999)))
    n = 4 if fixed else 8
    tz = ZoneInfo(zone)
    clock = FakeClock()
    set_wall(clock, start)
    handler = Fires(clock)
    async with AsyncQuiv(clock=clock, timezone=zone, shutdown_timeout=WAIT) as s:
        recorder = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        task_id = await s.add_task("h", handler, cron=expression)
        planned = await s.preview(task_id, n)
        assert planned == await s.preview(CronTrigger(expression), n, after=start)
        fires = [await run_next(s, clock, recorder, task_id) for _ in range(n)]
    assert fires == planned
    assert handler.at == fires
    assert all(a < b for a, b in zip([start, *fires], fires, strict=False))
    minute_field = expression.split()[0]
    for fire in fires:
        assert fire.tzinfo is UTC
        local = fire.astimezone(tz)
        naive = local.replace(tzinfo=None)
        # the wall time exists: read back in the zone, it is the same instant
        assert naive.replace(tzinfo=tz, fold=local.fold).astimezone(UTC) == fire
        assert naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive
        at_gap_end = (fire - timedelta(seconds=1)).astimezone(tz).utcoffset() != local.utcoffset()
        if fixed:
            m, h = (int(f) for f in expression.split()[:2])
            assert (local.hour, local.minute) == (h, m) or at_gap_end, local
        elif minute_field.startswith("*/"):
            assert local.minute % int(minute_field[2:]) == 0, local
        else:
            assert local.minute == int(minute_field), local
    if fixed:  # once a local day
        assert len({f.astimezone(tz).date() for f in fires}) == n


# -- wall-clock jumps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "jump", "ran_at", "then"),
    [
        # armed for 02:30; the wall clock jumps three days ahead: one run, not four
        ("30 2 * * *", timedelta(days=3, hours=4), utc(2025, 6, 5, 4, 1), utc(2025, 6, 6, 2, 30)),
        # hourly; five hours ahead: one run, not five
        ("0 * * * *", timedelta(hours=5), utc(2025, 6, 2, 5, 1), utc(2025, 6, 2, 6)),
    ],
)
async def test_a_forward_jump_of_the_wall_clock_makes_one_run_at_once(
    scheduler: AsyncQuiv,
    clock: FakeClock,
    recorder: Recorder,
    expression: str,
    jump: timedelta,
    ran_at: datetime,
    then: datetime,
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("c", handler, cron=expression)
    await settle()  # the timer has seen the task (a wake measures the wall clock)
    clock.jump_wall(jump)
    await clock.advance(WALL_CHECK - 1)  # the timer looks at the wall clock once a minute
    await settle()
    assert recorder.count(Event.JOB_STARTED) == 0
    await clock.advance(1)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await settle()
    assert handler.at == [ran_at]
    assert recorder.count(Event.JOB_STARTED) == 1
    assert await next_run(scheduler, task_id) == then
    assert await run_next(scheduler, clock, recorder, task_id) == then
    assert handler.at == [ran_at, then]


async def test_a_backward_jump_after_a_fire_does_not_run_it_again(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("c", handler, cron="0 * * * *")
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 1)
    clock.jump_wall(-3600)  # the wall clock reads 00:00 again
    await clock.advance(3600 + WALL_CHECK)  # and passes 01:00 again
    await settle()
    assert wall(clock) == utc(2025, 6, 2, 1, 1)
    assert recorder.count(Event.JOB_STARTED) == 1
    assert await next_run(scheduler, task_id) == utc(2025, 6, 2, 2)
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 2)
    assert handler.at == [utc(2025, 6, 2, 1), utc(2025, 6, 2, 2)]


@pytest.mark.parametrize("hours", [1, -1])
async def test_run_at_fires_at_its_wall_time_after_a_jump(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, hours: int
) -> None:
    handler = Fires(clock)
    when = utc(2025, 6, 2, 2)
    task_id = await scheduler.add_task("at", handler, run_once=True, run_at=when)
    await settle()
    clock.jump_wall(hours * 3600)
    await clock.advance(WALL_CHECK)
    await settle()
    assert recorder.count(Event.JOB_STARTED) == 0
    assert await next_run(scheduler, task_id) == when
    assert await run_next(scheduler, clock, recorder, task_id) == when
    assert handler.at == [when]
    # 2 h of wall time after a jump of +1 h is 1 h of monotonic time, and 3 h after -1 h
    assert clock.now() == pytest.approx(3600 * (2 - hours), abs=0.01)


async def test_a_wall_clock_run_armed_while_the_timer_sleeps_long_is_checked_within_a_minute(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    """The timer sleeps for an hourly task when a daily cron is added; the wall clock jumps."""
    await scheduler.add_task("hourly", lambda: None, interval=3600, delay=3600)
    await settle()
    handler = Fires(clock)
    task_id = await scheduler.add_task("daily", handler, cron="30 2 * * *")
    await settle()
    clock.jump_wall(3 * 3600)  # 03:00: the 02:30 fire has passed
    await clock.advance(WALL_CHECK)
    await recorder.wait_count(Event.JOB_COMPLETED, 1, task_id=task_id)
    assert handler.at == [utc(2025, 6, 2, 3, 1)]


class SleepLog(FakeClock):
    """A fake clock that logs the deadline of every ``sleep_until`` (one per timer wake)."""

    def __init__(self) -> None:
        super().__init__()
        self.deadlines: list[float] = []

    async def sleep_until(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        await super().sleep_until(deadline)


async def test_the_timer_looks_at_the_wall_clock_only_while_a_wall_clock_run_is_armed() -> None:
    clock = SleepLog()
    set_wall(clock, START)
    async with AsyncQuiv(clock=clock, shutdown_timeout=WAIT) as s:
        timer = s._engine.timer  # type: ignore[union-attr]
        await s.add_task("interval", lambda: None, interval=3600, delay=3600)
        await settle()
        assert timer.wall_armed == 0
        assert clock.deadlines[-1] == 3600  # it sleeps until the interval's deadline
        wakes = len(clock.deadlines)
        for _ in range(10):
            await clock.advance(WALL_CHECK)
            await settle()
        assert len(clock.deadlines) == wakes, "the timer woke with nothing due"
        # a yearly cron: now the timer looks at the wall clock every minute
        cron_id = await s.add_task("yearly", lambda: None, cron="@yearly")
        await settle()
        assert timer.wall_armed == 1
        assert clock.deadlines[-1] == pytest.approx(clock.now() + WALL_CHECK)
        wakes = len(clock.deadlines)
        await clock.advance(WALL_CHECK)
        await settle()
        assert len(clock.deadlines) == wakes + 1
        await s.remove_task(cron_id)
        await clock.advance(WALL_CHECK)  # the last minutely look; none after it
        await settle()
        assert timer.wall_armed == 0
        assert clock.deadlines[-1] == 3600
        wakes = len(clock.deadlines)
        for _ in range(5):
            await clock.advance(WALL_CHECK)
            await settle()
        assert len(clock.deadlines) == wakes


# -- misfires ------------------------------------------------------------------------------


@pytest.mark.parametrize(("grace", "skipped"), [(None, False), (30, False), (10, True)])
async def test_a_job_that_overruns_several_fires_is_followed_by_one_run(
    scheduler: AsyncQuiv,
    clock: FakeClock,
    recorder: Recorder,
    grace: float | None,
    skipped: bool,
) -> None:
    """Run 1 (00:01) ends at 00:06:20: five fires missed, the latest 20 s late."""
    handler = Blocking(clock)
    task_id = await scheduler.add_task("m", handler, cron="* * * * *", misfire_grace=grace)
    await advance_wall(clock, utc(2025, 6, 2, 0, 1))
    await handler.blocked()
    await advance_wall(clock, utc(2025, 6, 2, 0, 6, 20))
    handler.gate.set()
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    if skipped:
        await recorder.wait_count(Event.TASK_RUN_SKIPPED, 1)
        [record] = [r for r in recorder.records if r.event is Event.TASK_RUN_SKIPPED]
        assert record.task.skipped_runs == 1
    else:
        await recorder.wait_count(Event.JOB_COMPLETED, 2)  # the one catch-up run, at once
    await settle()
    catch_up = [] if skipped else [utc(2025, 6, 2, 0, 6, 20)]
    assert handler.at == [utc(2025, 6, 2, 0, 1), *catch_up]
    task = await scheduler.get_task(task_id)
    assert task.skipped_runs == int(skipped)
    assert task.misfire_grace_seconds == grace
    assert task.next_run_at == utc(2025, 6, 2, 0, 7)
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 0, 7)
    assert recorder.count(Event.JOB_STARTED) == len(handler.at) == 3 - skipped
    assert recorder.count(Event.TASK_RUN_SKIPPED) == int(skipped)


async def test_the_catch_up_run_comes_at_once_whatever_the_wall_clocks_fraction(
    clock: FakeClock,
) -> None:
    clock.jump_wall(7e-7)  # 00:00:00.0000007: datetimes round it up to .000001
    handler = Blocking(clock)
    async with AsyncQuiv(clock=clock, shutdown_timeout=WAIT) as s:
        recorder = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        await s.add_task("m", handler, cron="* * * * *")
        await clock.advance(60)
        await handler.blocked()
        await clock.advance(150)  # two fires pass while the job runs
        handler.gate.set()
        with anyio.move_on_after(1):  # the catch-up comes at once (a real clock's 1 us later)
            await recorder.wait_count(Event.JOB_COMPLETED, 2)
        assert recorder.count(Event.JOB_COMPLETED) == 2


@pytest.mark.parametrize(("grace", "skipped"), [(60, True), (7200, False)])
async def test_a_run_that_comes_due_too_late_after_a_jump_is_skipped(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, grace: float, skipped: bool
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("m", handler, cron="0 * * * *", misfire_grace=grace)
    await settle()
    clock.jump_wall(5400)  # 01:30: the 01:00 fire comes due 31 minutes late
    await clock.advance(WALL_CHECK)
    if skipped:
        await recorder.wait_count(Event.TASK_RUN_SKIPPED, 1)
    else:
        await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await settle()
    assert handler.at == ([] if skipped else [utc(2025, 6, 2, 1, 31)])
    task = await scheduler.get_task(task_id)
    assert task.skipped_runs == int(skipped)
    assert task.next_run_at == utc(2025, 6, 2, 2)
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 2)


@pytest.mark.parametrize(("grace", "skipped"), [(None, False), (300, True), (900, False)])
async def test_resume_after_missed_fires_makes_one_run(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, grace: float | None, skipped: bool
) -> None:
    """Paused at 01:10, resumed at 06:10: five fires missed, the latest 10 minutes late."""
    handler = Fires(clock)
    task_id = await scheduler.add_task("p", handler, cron="0 * * * *", misfire_grace=grace)
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 1)
    await advance_wall(clock, utc(2025, 6, 2, 1, 10))
    await scheduler.pause_task(task_id)
    await advance_wall(clock, utc(2025, 6, 2, 6, 10))
    assert recorder.count(Event.JOB_STARTED) == 1
    await scheduler.resume_task(task_id)
    if skipped:
        await recorder.wait_count(Event.TASK_RUN_SKIPPED, 1)
    else:
        await recorder.wait_count(Event.JOB_COMPLETED, 2)
    await settle()
    resumed = [] if skipped else [utc(2025, 6, 2, 6, 10)]
    assert handler.at == [utc(2025, 6, 2, 1), *resumed]
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    assert task.skipped_runs == int(skipped)
    assert task.next_run_at == utc(2025, 6, 2, 7)


async def test_resume_with_no_fire_missed_waits_for_the_next_fire(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("p", handler, cron="0 * * * *")
    await advance_wall(clock, utc(2025, 6, 2, 0, 10))
    await scheduler.pause_task(task_id)
    await advance_wall(clock, utc(2025, 6, 2, 0, 50))
    await scheduler.resume_task(task_id)
    await settle()
    assert recorder.count(Event.JOB_STARTED) == 0
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 1)
    assert handler.at == [utc(2025, 6, 2, 1)]


# -- the API through the scheduler ------------------------------------------------------------

BERLIN_WEEKDAYS = "At 02:30 on Monday through Friday (Europe/Berlin)"


async def test_update_task_moves_between_interval_cron_and_trigger(clock: FakeClock) -> None:
    handler = Fires(clock)
    async with AsyncQuiv(clock=clock, timezone="Europe/Berlin", shutdown_timeout=WAIT) as s:
        recorder = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        task_id = await s.add_task("u", handler, interval=60, delay=60)
        task = await s.get_task(task_id)
        assert (task.trigger, task.timezone, task.description) == (None, None, "Every 60 s")
        # interval -> cron (in the scheduler's zone)
        task = await s.update_task(task_id, cron="30 2 * * 1-5")
        assert task.trigger == "CronTrigger('30 2 * * 1-5', timezone='Europe/Berlin')"
        assert task.timezone == "Europe/Berlin"
        assert task.description == BERLIN_WEEKDAYS
        assert task.next_run_at == utc(2025, 6, 2, 0, 30)  # 02:30 CEST
        assert await s.get_task(task_id) == task
        assert await run_next(s, clock, recorder, task_id) == utc(2025, 6, 2, 0, 30)
        # cron -> a trigger with its own zone
        task = await s.update_task(task_id, trigger=CronTrigger("0 12 * * *", "America/New_York"))
        assert task.timezone == "America/New_York"
        assert task.next_run_at == utc(2025, 6, 2, 16)  # 12:00 EDT
        assert await run_next(s, clock, recorder, task_id) == utc(2025, 6, 2, 16)
        # trigger -> interval: one interval from now (now is a hair past 16:00, see PAST)
        task = await s.update_task(task_id, interval=90)
        assert (task.trigger, task.timezone, task.description) == (None, None, "Every 90 s")
        assert task.interval_seconds == 90
        assert task.next_run_at is not None
        assert abs(task.next_run_at - utc(2025, 6, 2, 16, 1, 30)) < timedelta(milliseconds=1)
        assert await run_next(s, clock, recorder, task_id) == task.next_run_at
        # IntervalTrigger(n) is interval=n
        task = await s.update_task(task_id, trigger=IntervalTrigger(30))
        assert (task.trigger, task.interval_seconds, task.description) == (None, 30, "Every 30 s")
        assert task.next_run_at is not None
        assert abs(task.next_run_at - utc(2025, 6, 2, 16, 2)) < timedelta(milliseconds=1)
        assert await run_next(s, clock, recorder, task_id) == task.next_run_at
    assert handler.at == [
        utc(2025, 6, 2, 0, 30),
        utc(2025, 6, 2, 16),
        utc(2025, 6, 2, 16, 1, 30),
        utc(2025, 6, 2, 16, 2),
    ]


def test_update_task_cron_and_trigger_on_the_sync_face(clock: FakeClock) -> None:
    with Quiv(clock=clock, timezone="Europe/Berlin", shutdown_timeout=WAIT) as q:
        task_id = q.add_task("u", lambda: None, interval=60, delay=60)
        task = q.update_task(task_id, cron="30 2 * * 1-5")
        assert task.trigger == "CronTrigger('30 2 * * 1-5', timezone='Europe/Berlin')"
        assert (task.timezone, task.description) == ("Europe/Berlin", BERLIN_WEEKDAYS)
        assert task.next_run_at == utc(2025, 6, 2, 0, 30)
        assert q.preview(task_id, 3) == [
            utc(2025, 6, 2, 0, 30),
            utc(2025, 6, 3, 0, 30),
            utc(2025, 6, 4, 0, 30),
        ]
        task = q.update_task(task_id, trigger=CronTrigger("@daily", "UTC"), misfire_grace=5)
        assert (task.timezone, task.next_run_at) == ("UTC", utc(2025, 6, 3))
        assert task.misfire_grace_seconds == 5
        task = q.update_task(task_id, misfire_grace=None)
        assert task.misfire_grace_seconds is None
        task = q.update_task(task_id, interval=60)
        assert (task.trigger, task.next_run_at) == (None, START + timedelta(seconds=60))
        assert q.get_task(task_id) == task


async def test_task_shows_the_planned_wall_times_exactly(
    scheduler: AsyncQuiv, clock: FakeClock
) -> None:
    await clock.advance(0.123456)  # not on a whole second
    at_id = await scheduler.add_task(
        "at", lambda: None, run_once=True, run_at=utc(2025, 6, 2, 1, 30)
    )
    cron_id = await scheduler.add_task("cron", lambda: None, cron="*/7 * * * *")
    recurring_at = await scheduler.add_task(
        "every", lambda: None, interval=60, run_at=utc(2025, 6, 2, 3)
    )
    tasks = {t.id: t for t in await scheduler.get_all_tasks(include_run_once=True)}
    assert tasks[at_id].next_run_at == utc(2025, 6, 2, 1, 30)
    assert tasks[at_id].description == "Once"
    assert tasks[cron_id].next_run_at == utc(2025, 6, 2, 0, 7)
    assert tasks[cron_id].trigger == "CronTrigger('*/7 * * * *', timezone='UTC')"
    assert tasks[cron_id].timezone == "UTC"
    assert tasks[recurring_at].next_run_at == utc(2025, 6, 2, 3)
    assert await scheduler.preview(at_id, 3) == [utc(2025, 6, 2, 1, 30)]
    assert await scheduler.preview(recurring_at, 3) == [
        utc(2025, 6, 2, 3),
        utc(2025, 6, 2, 3, 1),
        utc(2025, 6, 2, 3, 2),
    ]


async def test_preview_has_no_side_effects(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("p", handler, cron="30 2 * * *")
    await settle()
    before = (
        await scheduler.get_all_tasks(),
        await scheduler.get_all_jobs(),
        len(recorder.records),
    )
    expected = [utc(2025, 6, d, 2, 30) for d in range(2, 12)]
    assert await scheduler.preview(task_id, 10) == expected
    assert len(await scheduler.preview(task_id, 10_000)) == 10_000
    assert await scheduler.preview(task_id, 0) == []
    assert await scheduler.preview(task_id, 2, after=utc(2025, 6, 5)) == expected[3:5]
    assert await scheduler.preview(CronTrigger("30 2 * * *"), 10) == expected
    await settle()
    after = (await scheduler.get_all_tasks(), await scheduler.get_all_jobs(), len(recorder.records))
    assert after == before
    # the schedule is as it was: the first fire comes at 02:30, not before
    assert await run_next(scheduler, clock, recorder, task_id) == expected[0]
    assert await scheduler.preview(task_id, 2) == expected[1:3]
    assert handler.at == expected[:1]


async def test_preview_of_a_trigger_before_start_uses_the_scheduler_zone() -> None:
    s = AsyncQuiv(timezone="Europe/Berlin")
    after = datetime(2025, 3, 29)  # naive means UTC
    fires = [utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1), utc(2025, 3, 31, 0, 30)]
    assert await s.preview(CronTrigger("30 2 * * *"), 3, after=after) == fires
    own = [utc(2025, 3, 29, 2, 30), utc(2025, 3, 30, 2, 30)]
    assert await s.preview(CronTrigger("30 2 * * *", "UTC"), 2, after=after) == own


def _face_views(q: Quiv) -> tuple[Any, ...]:
    cron_id = q.add_task("c", lambda: None, cron="15 3 * * 1-5", misfire_grace=30)
    interval_id = q.add_task("i", lambda: None, interval=600, delay=600)
    trigger = CronTrigger("0 9 1 * *", "America/New_York")
    trigger_id = q.add_task("t", lambda: None, trigger=trigger)
    tasks = [q.get_task(i) for i in (cron_id, interval_id, trigger_id)]
    fields = [
        (t.trigger, t.timezone, t.description, t.next_run_at, t.misfire_grace_seconds)
        for t in tasks
    ]
    previews = [q.preview(i, 6) for i in (cron_id, interval_id, trigger_id)]
    previews.append(q.preview(trigger, 4, after=datetime(2025, 10, 1)))
    previews.append(q.preview(CronTrigger("30 2 * * *"), 4, after=datetime(2025, 10, 25)))
    return fields, previews


def test_both_faces_show_and_preview_the_same() -> None:
    def clock() -> FakeClock:
        c = FakeClock()
        set_wall(c, START)
        return c

    with Quiv(clock=clock(), timezone="Europe/Berlin", shutdown_timeout=WAIT) as q:
        sync_views = _face_views(q)

    async def async_views() -> tuple[Any, ...]:
        async with AsyncQuiv(clock=clock(), timezone="Europe/Berlin", shutdown_timeout=WAIT) as s:
            cron_id = await s.add_task("c", lambda: None, cron="15 3 * * 1-5", misfire_grace=30)
            interval_id = await s.add_task("i", lambda: None, interval=600, delay=600)
            trigger = CronTrigger("0 9 1 * *", "America/New_York")
            trigger_id = await s.add_task("t", lambda: None, trigger=trigger)
            tasks = [await s.get_task(i) for i in (cron_id, interval_id, trigger_id)]
            fields = [
                (t.trigger, t.timezone, t.description, t.next_run_at, t.misfire_grace_seconds)
                for t in tasks
            ]
            previews = [await s.preview(i, 6) for i in (cron_id, interval_id, trigger_id)]
            previews.append(await s.preview(trigger, 4, after=datetime(2025, 10, 1)))
            previews.append(
                await s.preview(CronTrigger("30 2 * * *"), 4, after=datetime(2025, 10, 25))
            )
            return fields, previews

    assert anyio.run(async_views) == sync_views
    fields, previews = sync_views
    assert fields[0][3] == utc(2025, 6, 2, 1, 15)  # 03:15 CEST
    assert previews[2][:2] == [utc(2025, 7, 1, 13), utc(2025, 8, 1, 13)]  # 09:00 EDT
    assert previews[4] == [  # the autumn overlap: once
        utc(2025, 10, 25, 0, 30),
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 27, 1, 30),
        utc(2025, 10, 28, 1, 30),
    ]


async def test_run_task_immediately_does_not_use_up_the_armed_fire(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    handler = Fires(clock)
    task_id = await scheduler.add_task("r", handler, cron="30 2 * * *")
    await advance_wall(clock, utc(2025, 6, 2, 1))
    await scheduler.run_task_immediately(task_id)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    await recorder.wait_count(Event.JOB_COMPLETED, 1)  # (run_next counts the events)
    assert await next_run(scheduler, task_id) == utc(2025, 6, 2, 2, 30)
    assert await run_next(scheduler, clock, recorder, task_id) == utc(2025, 6, 2, 2, 30)
    assert handler.at == [utc(2025, 6, 2, 1), utc(2025, 6, 2, 2, 30)]


async def test_a_trigger_object_runs_like_the_cron_parameter(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    by_cron = await scheduler.add_task("a", lambda: None, cron="*/20 * * * *")
    by_trigger = await scheduler.add_task("b", lambda: None, trigger=CronTrigger("*/20 * * * *"))
    until = START + timedelta(hours=2)
    assert await drive(scheduler, clock, recorder, by_cron, until) == [
        START + timedelta(minutes=20 * k) for k in range(1, 7)
    ]
    await recorder.wait_count(Event.JOB_COMPLETED, 6, task_id=by_trigger)
    await settle()
    assert recorder.count(Event.JOB_STARTED, task_id=by_trigger) == 6


# -- bad input: nothing registered ---------------------------------------------------------------


class NaiveFires:
    def next_fire(self, after: datetime) -> datetime | None:
        return datetime(2999, 1, 1)


class SameFire:
    def next_fire(self, after: datetime) -> datetime | None:
        return after


CRON_CONFLICTS: list[tuple[str, Any]] = [
    ("interval", 5),
    ("run_once", True),
    ("trigger", IntervalTrigger(5)),
    ("fixed_interval", False),
    ("run_at", datetime(2030, 1, 1)),
    ("delay", 5),
]


async def _unchanged(s: AsyncQuiv, recorder: Recorder, before: Any) -> None:
    await settle()
    assert await s.get_all_tasks(include_run_once=True) == before
    assert recorder.count(Event.TASK_ADDED) == 2
    assert recorder.count(Event.TASK_UPDATED) == 0


@pytest.fixture
async def two_tasks(scheduler: AsyncQuiv, recorder: Recorder) -> dict[str, str]:
    ids = {
        "recurring": await scheduler.add_task("r", lambda: None, interval=60, delay=60),
        "once": await scheduler.add_task("o", lambda: None, run_once=True, delay=60),
    }
    await recorder.wait_count(Event.TASK_ADDED, 2)
    return ids


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        *[({"cron": "* * * * *", name: value}, ["cron", name]) for name, value in CRON_CONFLICTS],
        ({"cron": "61 * * * *"}, ["cron", "Bad minute", "'61 * * * *'"]),
        ({"cron": "* * * *"}, ["cron", "Wrong number of fields", "'* * * *'"]),
        ({"cron": "@reboot"}, ["cron", "'@reboot'"]),
        ({"cron": 5}, ["cron", "5"]),
        ({"cron": "* * * * *", "misfire_grace": -1}, ["misfire_grace", "-1"]),
        ({"cron": "* * * * *", "misfire_grace": float("nan")}, ["misfire_grace", "nan"]),
        ({"trigger": NaiveFires()}, ["trigger", "NaiveFires", "naive"]),
        ({"trigger": SameFire()}, ["trigger", "SameFire", "strictly after"]),
    ],
    ids=repr,
)
async def test_add_task_refuses_and_registers_nothing(
    scheduler: AsyncQuiv,
    recorder: Recorder,
    two_tasks: dict[str, str],
    kwargs: dict[str, Any],
    words: list[str],
) -> None:
    before = await scheduler.get_all_tasks(include_run_once=True)
    with pytest.raises(ConfigurationError) as info:
        await scheduler.add_task("bad", lambda: None, **kwargs)
    for word in words:
        assert word in str(info.value)
    await _unchanged(scheduler, recorder, before)


@pytest.mark.parametrize(
    ("task", "kwargs", "words"),
    [
        ("once", {"cron": "* * * * *"}, ["cron", "run-once"]),
        ("once", {"trigger": CronTrigger("* * * * *")}, ["trigger", "run-once"]),
        ("recurring", {"cron": "* * * * *", "interval": 5}, ["cron", "interval"]),
        ("recurring", {"cron": "* * * * *", "run_at": datetime(2030, 1, 1)}, ["cron", "run_at"]),
        ("recurring", {"cron": "* * * * *", "trigger": IntervalTrigger(5)}, ["cron", "trigger"]),
        ("recurring", {"cron": "0 0 31 2 *"}, ["cron", "'0 0 31 2 *'"]),
        ("recurring", {"trigger": NaiveFires()}, ["trigger", "NaiveFires", "naive"]),
        ("recurring", {"trigger": SameFire()}, ["trigger", "SameFire", "strictly after"]),
        ("recurring", {"misfire_grace": -1}, ["misfire_grace", "-1"]),
    ],
    ids=repr,
)
async def test_update_task_refuses_and_changes_nothing(
    scheduler: AsyncQuiv,
    recorder: Recorder,
    two_tasks: dict[str, str],
    task: str,
    kwargs: dict[str, Any],
    words: list[str],
) -> None:
    before = await scheduler.get_all_tasks(include_run_once=True)
    with pytest.raises(QuivError) as info:
        await scheduler.update_task(two_tasks[task], **kwargs)
    assert isinstance(info.value, ConfigurationError)
    for word in words:
        assert word in str(info.value)
    await _unchanged(scheduler, recorder, before)


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (NaiveFires(), ["trigger", "NaiveFires", "naive"]),
        (SameFire(), ["trigger", "SameFire", "strictly after"]),
        (CronTrigger, ["task_id_or_trigger"]),  # the class, not an instance
    ],
    ids=repr,
)
async def test_preview_of_a_bad_trigger_is_refused(
    scheduler: AsyncQuiv,
    recorder: Recorder,
    two_tasks: dict[str, str],
    target: Any,
    words: list[str],
) -> None:
    before = await scheduler.get_all_tasks(include_run_once=True)
    with pytest.raises(ConfigurationError) as info:
        await scheduler.preview(target)
    for word in words:
        assert word in str(info.value)
    await _unchanged(scheduler, recorder, before)
