"""Schedules on a fake clock: grids, delays, run_at, jitter, timeouts, retries, ordering."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from scheduler_helpers import WAIT, Gates, Recorder, is_idle, settle

from quiv import AsyncQuiv, Event, JobStatus, TaskNotFoundError, TaskStatus
from quiv._clock import LoopClock
from quiv.testing import FakeClock


class Timeline:
    """A handler that records the fake time of each start; selected runs block on a gate."""

    def __init__(self, clock: FakeClock, gates: Gates, block_runs: tuple[int, ...] = ()) -> None:
        self.clock = clock
        self.starts: list[float] = []
        self.gates = {n: gates.new() for n in block_runs}
        self._entered = {n: threading.Event() for n in block_runs}

    def __call__(self) -> None:
        self.starts.append(self.clock.now())
        run = len(self.starts)
        gate = self.gates.get(run)
        if gate is not None:
            self._entered[run].set()
            gate.wait(WAIT * 2)

    async def blocked_in(self, run: int) -> None:
        """Wait until blocking run number *run* has recorded its start and blocks."""
        assert await anyio.to_thread.run_sync(self._entered[run].wait, WAIT)


async def advance_to(clock: FakeClock, when: float) -> None:
    await clock.advance(when - clock.now())
    await settle()


async def test_a_recurring_task_without_delay_runs_at_once(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates)
    task_id = await scheduler.add_task("t", timeline, interval=10)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    assert timeline.starts == [0.0]


@pytest.mark.parametrize("fixed", [True, False])
async def test_interval_grid(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates, fixed: bool
) -> None:
    """Run 3 ends 3 s late; run 4 overruns two slots. Fixed: grid kept; else: after the end."""
    timeline = Timeline(clock, gates, block_runs=(3, 4))
    task_id = await scheduler.add_task("grid", timeline, interval=10, fixed_interval=fixed)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 9.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 10)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    await advance_to(clock, 20)
    await timeline.blocked_in(3)
    await advance_to(clock, 23)  # run 3 is still running
    timeline.gates[3].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 3)
    third_end_next = 30.0 if fixed else 33.0
    await advance_to(clock, third_end_next - 0.01)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, third_end_next)
    await timeline.blocked_in(4)
    await advance_to(clock, third_end_next + 25)  # two more slots pass while run 4 runs
    assert (await scheduler.stats()).active_jobs == 1  # a task never overlaps itself
    timeline.gates[4].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 4)
    fourth_next = 60.0 if fixed else third_end_next + 25 + 10
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    await advance_to(clock, fourth_next - 0.01)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, fourth_next)
    await recorder.wait_count(Event.JOB_COMPLETED, 5)
    expected = [0.0, 10.0, 20.0, third_end_next, fourth_next]
    assert timeline.starts == pytest.approx(expected)


async def test_fixed_grid_does_not_drift_over_many_runs(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    """Every run ends 30 ms late; the next still comes on the grid, never end + interval."""
    runs = 50
    timeline = Timeline(clock, gates, block_runs=tuple(range(1, runs + 1)))
    await scheduler.add_task("tick", timeline, interval=0.1)
    for n in range(1, runs + 1):
        await timeline.blocked_in(n)
        await clock.advance(0.03)
        timeline.gates[n].set()
        await recorder.wait_count(Event.JOB_COMPLETED, n)
        await advance_to(clock, n * 0.1 + 1e-6)
    await recorder.wait_count(Event.JOB_COMPLETED, runs + 1)
    assert len(timeline.starts) == runs + 1
    for n, start in enumerate(timeline.starts):
        assert start == pytest.approx(n * 0.1, abs=1e-5)


async def test_run_once_runs_once_and_disappears(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates)
    task_id = await scheduler.add_task("once", timeline, run_once=True)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(task_id)
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    await advance_to(clock, 1000)
    assert timeline.starts == [0.0]
    assert (await scheduler.get_job(job.id)).status is JobStatus.COMPLETED


@pytest.mark.parametrize("run_once", [False, True])
async def test_delay(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates, run_once: bool
) -> None:
    timeline = Timeline(clock, gates)
    interval = None if run_once else 10
    task_id = await scheduler.add_task("d", timeline, interval=interval, run_once=run_once, delay=5)
    await advance_to(clock, 4.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 5)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    if not run_once:
        await advance_to(clock, 14.99)
        assert await is_idle(scheduler, task_id)
        await advance_to(clock, 15)
        await recorder.wait_count(Event.JOB_COMPLETED, 2)
    assert timeline.starts == ([5.0] if run_once else [5.0, 15.0])


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Make the local time zone differ from UTC, so naive-as-local bugs show."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.parametrize("kind", ["naive", "aware", "other-zone"])
async def test_run_at(
    scheduler: AsyncQuiv,
    clock: FakeClock,
    recorder: Recorder,
    gates: Gates,
    far_from_utc: None,
    kind: str,
) -> None:
    when = fake_wall_now(clock) + timedelta(seconds=100)
    if kind == "naive":
        run_at: datetime = when.replace(tzinfo=None)  # naive means UTC
    elif kind == "aware":
        run_at = when
    else:
        run_at = when.astimezone(timezone(timedelta(hours=-7)))
    timeline = Timeline(clock, gates)
    task_id = await scheduler.add_task("at", timeline, run_once=True, run_at=run_at)
    task = (await scheduler.get_all_tasks(include_run_once=True))[0]
    assert task.id == task_id
    assert task.next_run_at is not None
    assert task.next_run_at == when  # exactly the wall time asked for
    await advance_to(clock, 98)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 101)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert len(timeline.starts) == 1


async def test_run_at_in_the_past_runs_now(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates)
    past = datetime.now(timezone.utc) - timedelta(days=3)
    await scheduler.add_task("past", timeline, interval=10, run_at=past)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert timeline.starts == [0.0]
    await advance_to(clock, 10)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)  # the grid starts at "now"


async def test_jitter_delays_recurring_runs_within_bounds(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    offsets: list[float] = []
    # Under a FakeClock, next_run_at is the fake wall time: its start (a whole
    # second, when the fixture started the scheduler, at fake 0) plus the fake time.
    assert clock.now() == 0
    started = fake_wall_now(clock)

    def on_done(event: Event, task: Any, job: Any) -> None:
        assert task.next_run_at is not None
        offsets.append((task.next_run_at - started).total_seconds() - clock.now())

    scheduler.add_listener(Event.JOB_COMPLETED, on_done)
    timeline = Timeline(clock, gates)
    task_id = await scheduler.add_task("j", timeline, interval=10, jitter=5, fixed_interval=False)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert timeline.starts == [0.0]  # no jitter on the first run
    for n in range(2, 22):
        end = clock.now()
        await advance_to(clock, end + 9.999)
        assert await is_idle(scheduler, task_id), "ran before its interval"
        await advance_to(clock, end + 15)
        await recorder.wait_count(Event.JOB_COMPLETED, n)
    assert all(9.5 <= offset <= 15.0 for offset in offsets), offsets
    assert max(offsets) - min(offsets) > 0.5, "jitter never varied"


async def test_jitter_keeps_the_fixed_grid(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates)
    task_id = await scheduler.add_task("j", timeline, interval=100, jitter=10)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    for n in range(2, 12):
        slot = 100.0 * (n - 1)
        await advance_to(clock, slot - 0.001)
        assert await is_idle(scheduler, task_id)
        await advance_to(clock, slot + 10)
        await recorder.wait_count(Event.JOB_COMPLETED, n)
    # Each start is within [slot, slot + jitter] of its own slot: the grid never moved.
    for n, start in enumerate(timeline.starts):
        assert 100.0 * n <= start <= 100.0 * n + 10


@pytest.mark.parametrize("is_async", [False, True])
async def test_timeout_cancels_with_a_timed_out_message(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, is_async: bool
) -> None:
    saw_stop = threading.Event()

    def sync_handler(_stop_event: threading.Event) -> None:
        if _stop_event.wait(WAIT * 2):
            saw_stop.set()

    async def async_handler() -> None:
        try:
            await anyio.sleep(3600)  # real time; only cancellation ends it
        finally:
            saw_stop.set()

    handler = async_handler if is_async else sync_handler
    task_id = await scheduler.add_task("slow", handler, interval=60, timeout=5, max_retries=3)
    await recorder.wait_count(Event.JOB_STARTED, 1)
    await advance_to(clock, 4.99)
    assert (await scheduler.get_task(task_id)).status is TaskStatus.RUNNING
    await clock.advance(0.01)
    [job] = await recorder.wait_count(Event.JOB_CANCELLED, 1)
    assert saw_stop.is_set()
    assert job.status is JobStatus.CANCELLED
    assert job.error_message is not None and "timed out" in job.error_message
    assert "5" in job.error_message
    # A timed-out job is cancelled, never retried; the task goes back on its grid.
    assert recorder.count(Event.JOB_RETRYING) == 0
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    assert task.retry_attempt == 0
    await advance_to(clock, 60)
    await recorder.wait_count(Event.JOB_STARTED, 2)


async def test_timeout_does_not_fire_for_a_quick_job(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates)
    await scheduler.add_task("quick", timeline, interval=10, timeout=5)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 9)
    assert recorder.count(Event.JOB_CANCELLED) == 0


class Flaky:
    """Fails the first *failures* calls, records the fake time of every call."""

    def __init__(self, clock: FakeClock, failures: int) -> None:
        self.clock = clock
        self.failures = failures
        self.calls: list[float] = []

    def __call__(self) -> None:
        self.calls.append(self.clock.now())
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"failure {len(self.calls)}")


async def test_retries_with_exponential_backoff_then_success(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    flaky = Flaky(clock, failures=2)
    task_id = await scheduler.add_task(
        "flaky", flaky, run_once=True, max_retries=3, retry_backoff=2
    )
    await recorder.wait_count(Event.JOB_RETRYING, 1)
    assert (await scheduler.get_task(task_id)).retry_attempt == 1
    await advance_to(clock, 1.99)
    assert await is_idle(scheduler, task_id)
    assert flaky.calls == [0.0]
    await advance_to(clock, 2)
    await recorder.wait_count(Event.JOB_RETRYING, 2)
    await advance_to(clock, 5.99)  # second retry after 2 * 2**1 = 4 s
    assert await is_idle(scheduler, task_id)
    assert flaky.calls == [0.0, 2.0]
    await advance_to(clock, 6)
    [job] = await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert flaky.calls == [0.0, 2.0, 6.0]
    assert job.attempt == 3
    events = [e for e in recorder.events(task_id=task_id) if e.is_job_event]
    S, F, R, C = Event.JOB_STARTED, Event.JOB_FAILED, Event.JOB_RETRYING, Event.JOB_COMPLETED
    assert events == [S, F, R, S, F, R, S, C]
    failed = recorder.jobs(Event.JOB_FAILED)
    assert [j.attempt for j in failed] == [1, 2]
    assert [j.error_message for j in failed] == [
        "RuntimeError: failure 1",
        "RuntimeError: failure 2",
    ]
    # JOB_RETRYING carries the failed job
    assert [j.id for j in recorder.jobs(Event.JOB_RETRYING)] == [j.id for j in failed]
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(task_id)


async def test_exhausted_run_once_task_is_removed(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    flaky = Flaky(clock, failures=100)
    task_id = await scheduler.add_task("bad", flaky, run_once=True, max_retries=2, retry_backoff=1)
    await recorder.wait_count(Event.JOB_RETRYING, 1)
    await advance_to(clock, 1)
    await recorder.wait_count(Event.JOB_RETRYING, 2)
    await advance_to(clock, 3)
    await recorder.wait_count(Event.JOB_FAILED, 3)
    assert flaky.calls == [0.0, 1.0, 3.0]
    assert recorder.count(Event.JOB_RETRYING) == 2
    assert [j.attempt for j in recorder.jobs(Event.JOB_FAILED)] == [1, 2, 3]
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(task_id)
    await advance_to(clock, 1000)
    assert len(flaky.calls) == 3


async def test_exhausted_recurring_task_goes_back_on_schedule(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    flaky = Flaky(clock, failures=2)
    task_id = await scheduler.add_task("bad", flaky, interval=100, max_retries=1, retry_backoff=1)
    await recorder.wait_count(Event.JOB_RETRYING, 1)
    await advance_to(clock, 1)
    await recorder.wait_count(Event.JOB_FAILED, 2)
    task = await scheduler.get_task(task_id)
    assert task.retry_attempt == 0
    assert task.status is TaskStatus.ACTIVE
    assert recorder.count(Event.JOB_RETRYING) == 1
    await advance_to(clock, 99.99)
    assert await is_idle(scheduler, task_id)
    assert flaky.calls == [0.0, 1.0]
    await advance_to(clock, 100)
    [job] = await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert job.attempt == 1
    assert flaky.calls == [0.0, 1.0, 100.0]


async def test_cancelled_jobs_never_retry(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    task_id = await scheduler.add_task(
        "c", lambda _stop_event: _stop_event.wait(WAIT * 2), run_once=True, max_retries=5
    )
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    assert scheduler.cancel_job(started.id)
    [job] = await recorder.wait_count(Event.JOB_CANCELLED, 1)
    assert job.id == started.id
    await settle()
    assert recorder.count(Event.JOB_RETRYING) == 0
    assert recorder.count(Event.JOB_STARTED) == 1
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(task_id)


async def test_a_task_never_overlaps_itself(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    timeline = Timeline(clock, gates, block_runs=(1,))
    task_id = await scheduler.add_task("long", timeline, interval=1)
    await timeline.blocked_in(1)
    for _ in range(10):
        await clock.advance(1)
        await settle()
        assert (await scheduler.stats()).active_jobs == 1
    assert timeline.starts == [0.0]
    timeline.gates[1].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 10.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 11)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)


async def test_earliest_due_runs_first_when_the_pool_is_full(
    clock: FakeClock, gates: Gates
) -> None:
    order: list[str] = []
    lock = threading.Lock()

    def job(name: str) -> None:
        with lock:
            order.append(name)

    blocker = gates.new()
    async with AsyncQuiv(clock=clock, pool_size=1, shutdown_timeout=5) as s:
        rec = Recorder(s)
        await s.add_task("blocker", lambda: blocker.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        # Added in an order unlike their due times; b and d are due together.
        for name, delay in [("a", 4), ("b", 1), ("c", 3), ("d", 1), ("e", 2)]:
            await s.add_task(name, job, run_once=True, delay=delay, args=(name,))
        await advance_to(clock, 3.5)  # a is not due yet
        await s.add_task("f", job, run_once=True, args=("f",))  # due now: after b..e
        await advance_to(clock, 5)
        assert order == []
        assert (await s.stats()).active_jobs == 7  # the blocker and six queued
        blocker.set()
        await rec.wait_count(Event.JOB_COMPLETED, 7)
    assert order == ["b", "d", "e", "c", "f", "a"]


class CountingClock(LoopClock):
    """The real loop clock, counting how often the scheduler consults it."""

    def __init__(self) -> None:
        super().__init__()
        self.now_calls = 0
        self.sleeps = 0
        self.deadlines: list[float] = []

    def now(self) -> float:
        self.now_calls += 1
        return super().now()

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps += 1
        self.deadlines.append(deadline)
        await super().sleep_until(deadline)


async def _idle_with_many_tasks(count: int) -> None:
    clock = CountingClock()
    async with AsyncQuiv(clock=clock, db_path=":memory:") as s:
        # Deadlines far in the future; most added in decreasing order, so many
        # additions move the earliest deadline (and wake the timer) while adding.
        start = clock.now()
        for i in range(count):
            await s.add_task(f"t{i}", lambda: None, interval=3600, delay=10_000 + (count - i))
        await settle()
        sleeps, now_calls = clock.sleeps, clock.now_calls
        assert sleeps <= count + 2
        # It sleeps until the earliest deadline, not for some polling period.
        assert clock.deadlines[-1] >= start + 10_000
        await anyio.sleep(0.3)  # a real interval with nothing due: nobody may wake up
        await settle()
        assert clock.sleeps == sleeps, "the timer woke up while idle"
        assert clock.now_calls == now_calls, "the scheduler read the clock while idle"
        assert (await s.stats()).tasks_by_status["active"] == count


async def test_an_idle_scheduler_with_many_future_tasks_does_not_wake_up() -> None:
    await _idle_with_many_tasks(20_000)


@pytest.mark.slow
async def test_an_idle_scheduler_with_100000_future_tasks_does_not_wake_up() -> None:
    await _idle_with_many_tasks(100_000)


async def test_fake_clock_rejects_going_back() -> None:
    clock = FakeClock(start=5.0)
    assert clock.now() == 5.0
    with pytest.raises(ValueError):
        await clock.advance(-1)
    with pytest.raises(ValueError):
        await clock.advance(float("nan"))
    await clock.advance(0)
    assert clock.now() == 5.0


@pytest.mark.parametrize("clock_start", [0.0, 1e9])
async def test_schedules_do_not_depend_on_the_clock_origin(clock_start: float) -> None:
    clock = FakeClock(start=clock_start)
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s)
        task_id = await s.add_task("t", lambda: None, interval=10, delay=5)
        await clock.advance(4.99)
        await settle()
        assert await is_idle(s, task_id)
        await clock.advance(0.01)
        await rec.wait_count(Event.JOB_COMPLETED, 1)
        await clock.advance(10)
        await rec.wait_count(Event.JOB_COMPLETED, 2)


@pytest.mark.timeout(20)  # the timer used to spin forever on the scheduler's loop
@pytest.mark.parametrize("fixed", [True, False])
async def test_an_interval_below_the_clock_resolution_does_not_hang(fixed: bool) -> None:
    clock = FakeClock(start=1e5)
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s)
        await s.add_task("tiny", lambda: None, interval=1e-300, fixed_interval=fixed)
        for n in range(1, 4):
            await rec.wait_count(Event.JOB_COMPLETED, n)
            await clock.advance(0.001)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_with_the_loop_clock_no_job_starts_before_its_deadline(is_async: bool) -> None:
    """The timer wakes a little ahead of a deadline; the worker waits out the rest."""
    starts: dict[int, float] = {}

    def mark(i: int) -> None:
        starts[i] = time.monotonic()

    async def mark_async(i: int) -> None:
        mark(i)

    intended: dict[int, float] = {}
    async with AsyncQuiv(pool_size=4, db_path=":memory:") as s:
        rec = Recorder(s, [Event.JOB_COMPLETED])
        for i in range(40):
            delay = 0.002 + i * 0.0007  # a spread of deadlines inside and beyond the lead
            intended[i] = time.monotonic() + delay
            await s.add_task(
                "m", mark_async if is_async else mark, run_once=True, delay=delay, args=(i,)
            )
        await rec.wait_count(Event.JOB_COMPLETED, 40)
    early = {i: intended[i] - starts[i] for i in intended if starts[i] < intended[i]}
    assert early == {}, f"started ahead of the deadline by (s): {early}"


def fake_wall_now(clock: FakeClock) -> datetime:
    """The fake clock's wall time (it starts on a whole second, not at the real time)."""
    return datetime.fromtimestamp(clock.wall_time(), timezone.utc)
