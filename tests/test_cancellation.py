"""Cancellation: cancel_job, timeouts, removal and shutdown reach sync and async handlers."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from scheduler_helpers import WAIT, Gates, Recorder, handler_threads, settle

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    JobCancelledError,
    JobStatus,
    TaskNotFoundError,
    TaskStatus,
    current_job,
)
from quiv.testing import FakeClock


class AsyncSleeper:
    """An async handler that never checks its stop event; records how it ended."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.stop_seen: bool | None = None

    async def __call__(self, _stop_event: threading.Event) -> None:
        self.entered.set()
        try:
            await anyio.sleep(3600)  # real time: only cancellation ends it
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            self.stop_seen = _stop_event.is_set()
            raise
        finally:
            self.finished.set()


def waits_for_stop(_stop_event: threading.Event) -> None:
    _stop_event.wait(WAIT * 2)


async def test_cancel_a_running_sync_job(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    task_id = await scheduler.add_task("sync", waits_for_stop, interval=60)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    assert scheduler.cancel_job(started.id) is True
    assert scheduler.cancel_job(started.id) is True  # still in flight: repeatable
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == "cancelled by cancel_job()"
    assert job.started_at is not None and job.ended_at is not None
    [event_job] = await recorder.wait_count(Event.JOB_CANCELLED, 1)
    assert event_job == job
    assert scheduler.cancel_job(started.id) is False  # finished
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE  # a recurring task goes on
    assert task.next_run_at is not None


async def test_cancel_a_running_async_job_that_never_checks(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    sleeper = AsyncSleeper()
    await scheduler.add_task("async", sleeper, run_once=True)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    assert await anyio.to_thread.run_sync(sleeper.entered.wait, WAIT)
    assert scheduler.cancel_job(started.id)
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == "cancelled by cancel_job()"
    assert sleeper.cancelled.is_set()
    assert sleeper.stop_seen is True  # the stop event is set before the scope is cancelled
    assert handler_threads() == []


async def test_cancel_reaches_child_tasks_of_an_async_handler(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    cancelled: list[int] = []
    ready = threading.Semaphore(0)

    async def child(n: int) -> None:
        try:
            ready.release()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(n)
            raise

    async def parent() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(child, n)

    await scheduler.add_task("tree", parent, run_once=True)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    for _ in range(3):
        assert await anyio.to_thread.run_sync(ready.acquire, True, WAIT)
    scheduler.cancel_job(started.id)
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert sorted(cancelled) == [0, 1, 2]


async def test_an_async_job_cancelled_just_as_it_starts_is_still_cancelled(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    """Cancel from a JOB_STARTED listener: the worker loop may not exist yet."""
    cancels: list[bool] = []

    def cancel_on_start(event: Event, task: Any, job: Any) -> None:
        cancels.append(scheduler.cancel_job(job.id))

    scheduler.add_listener(Event.JOB_STARTED, cancel_on_start)
    for _ in range(5):
        await scheduler.add_task("early", AsyncSleeper(), run_once=True)
    jobs = await recorder.wait_count(Event.JOB_CANCELLED, 5)
    assert cancels == [True] * 5
    assert all(j.error_message == "cancelled by cancel_job()" for j in jobs)


async def test_a_job_cancelled_before_it_starts_never_calls_its_handler(
    clock: FakeClock, gates: Gates
) -> None:
    blocker = gates.new()
    called = threading.Event()
    async with AsyncQuiv(clock=clock, pool_size=1, shutdown_timeout=5) as s:
        rec = Recorder(s)
        await s.add_task("blocker", lambda: blocker.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        task_id = await s.add_task("queued", called.set, interval=60, max_retries=3)
        [queued] = await s.get_all_jobs(task_id=task_id)
        assert queued.status is JobStatus.SCHEDULED
        assert queued.started_at is None
        assert (await s.get_task(task_id)).status is TaskStatus.RUNNING
        assert s.cancel_job(queued.id) is True
        job = await s.wait_for_job(queued.id, timeout=WAIT)
        assert job.status is JobStatus.CANCELLED
        assert job.error_message == "cancelled by cancel_job()"
        assert job.started_at is None
        assert s.cancel_job(queued.id) is False
        assert (await s.get_task(task_id)).status is TaskStatus.ACTIVE
        blocker.set()
        await rec.wait_count(Event.JOB_COMPLETED, 1)  # the blocker
        await settle()
        assert rec.count(Event.JOB_STARTED) == 1
        assert rec.count(Event.JOB_RETRYING) == 0
    assert not called.is_set()


async def test_removing_a_task_with_a_queued_job_never_calls_its_handler(
    clock: FakeClock, gates: Gates
) -> None:
    blocker = gates.new()
    called = threading.Event()
    async with AsyncQuiv(clock=clock, pool_size=1, shutdown_timeout=5) as s:
        rec = Recorder(s)
        await s.add_task("blocker", lambda: blocker.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        task_id = await s.add_task("queued", called.set, run_once=True)
        [queued] = await s.get_all_jobs(task_id=task_id)
        await s.remove_task(task_id)
        job = await s.wait_for_job(queued.id, timeout=WAIT)
        assert job.status is JobStatus.CANCELLED
        assert job.error_message == "task removed"
        blocker.set()
        await rec.wait_count(Event.JOB_COMPLETED, 1)
    assert not called.is_set()


async def _cancel_by(
    reason: str, s: AsyncQuiv, clock: FakeClock, job_id: str, task_id: str
) -> None:
    if reason == "cancel_job":
        assert s.cancel_job(job_id)
    elif reason == "timeout":
        await clock.advance(10)
    elif reason == "remove":
        await s.remove_task(task_id)
    else:
        await s.shutdown()


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("cancel_job", "cancelled by cancel_job()"),
        ("timeout", "timed out after 10 s"),
        ("remove", "task removed"),
        ("shutdown", "scheduler shut down"),
    ],
)
@pytest.mark.parametrize("is_async", [False, True])
async def test_every_cancellation_says_why(
    clock: FakeClock, reason: str, message: str, is_async: bool
) -> None:
    sleeper = AsyncSleeper()
    handler = sleeper if is_async else waits_for_stop
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s)
        task_id = await s.add_task("victim", handler, interval=60, timeout=10)
        [started] = await rec.wait_count(Event.JOB_STARTED, 1)
        await _cancel_by(reason, s, clock, started.id, task_id)
        [job] = await rec.wait_count(Event.JOB_CANCELLED, 1)
    assert job.id == started.id
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == message
    assert rec.count(Event.JOB_FAILED) == 0
    if is_async:
        assert sleeper.cancelled.is_set()


async def test_cancel_job_returns_false_for_unknown_and_finished_jobs(
    scheduler: AsyncQuiv,
) -> None:
    assert scheduler.cancel_job("no-such-job") is False
    task_id = await scheduler.add_task("quick", lambda: None, run_once=True)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert scheduler.cancel_job(job.id) is False
    assert (await scheduler.get_job(job.id)).status is JobStatus.COMPLETED


@pytest.mark.parametrize("bad", [None, 42, b"id", ["id"]])
async def test_cancel_job_rejects_non_string_ids(scheduler: AsyncQuiv, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="job_id"):
        scheduler.cancel_job(bad)


async def test_a_sync_handler_that_returns_after_a_cancel_is_recorded_cancelled(
    scheduler: AsyncQuiv, recorder: Recorder, gates: Gates
) -> None:
    release = gates.new()
    await scheduler.add_task("deaf", lambda: release.wait(WAIT * 2), run_once=True)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    scheduler.cancel_job(started.id)
    await settle()
    assert (await scheduler.get_job(started.id)).status is JobStatus.RUNNING
    release.set()
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED


@pytest.mark.parametrize("is_async", [False, True])
async def test_job_cancelled_error_from_the_handler_ends_the_job_cancelled(
    scheduler: AsyncQuiv, recorder: Recorder, is_async: bool
) -> None:
    def sync_handler(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT * 2)
        ctx = current_job()
        assert ctx is not None
        ctx.raise_if_cancelled()

    async def async_handler() -> None:
        ctx = current_job()
        assert ctx is not None
        try:
            await anyio.sleep(3600)
        finally:
            with pytest.raises(JobCancelledError, match="cancel_job"):
                ctx.raise_if_cancelled()

    await scheduler.add_task(
        "raiser", async_handler if is_async else sync_handler, run_once=True, max_retries=2
    )
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    scheduler.cancel_job(started.id)
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert recorder.count(Event.JOB_RETRYING) == 0


async def test_job_cancelled_error_raised_without_a_cancel_is_a_failure(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    def handler() -> None:
        raise JobCancelledError("my own")

    task_id = await scheduler.add_task("fake", handler, run_once=True)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "JobCancelledError: my own"


async def test_removing_a_running_task_cancels_its_job_and_keeps_history(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    sleeper = AsyncSleeper()
    task_id = await scheduler.add_task("doomed", sleeper, interval=5)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    waiter_result: list[Any] = []

    async def wait_task() -> None:
        waiter_result.append(await scheduler.wait_for_task(task_id, timeout=WAIT))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_task)
        await settle()
        await scheduler.remove_task(task_id)
        with pytest.raises(TaskNotFoundError):
            await scheduler.get_task(task_id)
    [job] = waiter_result
    assert job.id == started.id
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == "task removed"
    assert sleeper.cancelled.is_set()
    assert [j.id for j in await scheduler.get_all_jobs(task_id=task_id)] == [started.id]
    events = recorder.events(task_id=task_id)
    assert events.index(Event.TASK_REMOVED) < events.index(Event.JOB_CANCELLED)


async def test_cancelling_queued_jobs_while_a_worker_takes_them(clock: FakeClock) -> None:
    """Race the worker: a job whose handler ran is recorded as started, and the others not."""
    called: set[str] = set()
    blocker = threading.Event()
    count = 60

    def record(_job_id: str) -> None:
        called.add(_job_id)

    async with AsyncQuiv(clock=clock, pool_size=2, shutdown_timeout=5) as s:
        rec = Recorder(s)
        await s.add_task("blocker", lambda: blocker.wait(WAIT * 2), run_once=True)
        await s.add_task("blocker2", lambda: blocker.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 2)
        ids = [await s.add_task(f"q{i}", record, run_once=True) for i in range(count)]
        queued = [job for task_id in ids for job in await s.get_all_jobs(task_id=task_id)]
        assert len(queued) == count
        blocker.set()  # the workers start taking queued jobs ...
        for job in queued[::2]:  # ... while every other one is cancelled
            s.cancel_job(job.id)
            await anyio.lowlevel.checkpoint()
        await rec.wait_for(
            lambda: rec.count(Event.JOB_COMPLETED) + rec.count(Event.JOB_CANCELLED) >= count + 2
        )
    ended = rec.jobs(Event.JOB_COMPLETED) + rec.jobs(Event.JOB_CANCELLED)
    jobs = {j.id: j for j in ended if j.task_name.startswith("q")}
    assert len(jobs) == count
    started = {job_id for job_id, job in jobs.items() if job.started_at is not None}
    assert called == started
    for job_id, job in jobs.items():
        if job_id not in called:
            assert job.status is JobStatus.CANCELLED
