"""Managing tasks and jobs: pause/resume, remove, update, run now, waits, queries, stats."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from scheduler_helpers import WAIT, Gates, Recorder, is_idle, settle

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    Job,
    JobNotFoundError,
    JobStatus,
    Task,
    TaskNotActiveError,
    TaskNotFoundError,
    TaskRunningError,
    TaskStatus,
)
from quiv.testing import FakeClock


async def advance_to(clock: FakeClock, when: float) -> None:
    await clock.advance(when - clock.now())
    await settle()


class Calls:
    """A handler that records its arguments; selected calls block on a gate."""

    def __init__(self, gates: Gates | None = None, block: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.gates = {n: gates.new() for n in block} if gates else {}
        self.entered = {n: threading.Event() for n in block}

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))
        n = len(self.calls)
        if n in self.gates:
            self.entered[n].set()
            self.gates[n].wait(WAIT * 2)

    async def blocked_in(self, n: int) -> None:
        assert await anyio.to_thread.run_sync(self.entered[n].wait, WAIT)


# -- pause / resume -------------------------------------------------------------------


async def test_pause_and_resume_an_idle_task(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    calls = Calls()
    task_id = await scheduler.add_task("p", calls, interval=10, delay=5)
    await scheduler.pause_task(task_id)
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.PAUSED
    assert task.next_run_at is None
    await advance_to(clock, 100)
    assert await is_idle(scheduler, task_id)
    assert (await scheduler.get_task(task_id)).status is TaskStatus.PAUSED
    await scheduler.resume_task(task_id, delay=3)
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    assert task.next_run_at is not None
    await advance_to(clock, 102.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 103)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 112.99)  # the grid restarts at the resume time
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 113)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    paused = [r.task for r in recorder.records if r.event is Event.TASK_PAUSED]
    resumed = [r.task for r in recorder.records if r.event is Event.TASK_RESUMED]
    assert [t.status for t in paused] == [TaskStatus.PAUSED]
    assert [t.status for t in resumed] == [TaskStatus.ACTIVE]


async def test_resume_without_delay_runs_now(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("p", Calls(), interval=10, delay=50)
    await scheduler.pause_task(task_id)
    await scheduler.pause_task(task_id)  # twice: no error, an event each time
    await scheduler.resume_task(task_id)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await recorder.wait_count(Event.TASK_PAUSED, 2)


async def test_resume_an_active_task_reschedules_it(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("p", Calls(), interval=100, delay=50)
    await scheduler.resume_task(task_id, delay=7)
    await advance_to(clock, 6.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 7)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await recorder.wait_count(Event.TASK_RESUMED, 1)


async def test_pause_a_running_task(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("p", calls, interval=10)
    await calls.blocked_in(1)
    await scheduler.pause_task(task_id)
    assert (await scheduler.get_task(task_id)).status is TaskStatus.PAUSED
    with pytest.raises(TaskRunningError):
        await scheduler.resume_task(task_id)
    with pytest.raises(TaskNotActiveError) as info:
        await scheduler.run_task_immediately(task_id, after_current=True)
    assert type(info.value) is TaskNotActiveError
    calls.gates[1].set()
    [job] = await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert job.status is JobStatus.COMPLETED  # the job in flight ran to its end
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.PAUSED
    assert task.next_run_at is None
    await advance_to(clock, 100)
    assert await is_idle(scheduler, task_id)
    await scheduler.resume_task(task_id)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)


async def test_pause_drops_a_pending_rerun(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("p", calls, interval=10)
    await calls.blocked_in(1)
    await scheduler.run_task_immediately(task_id, after_current=True)
    assert (await scheduler.get_task(task_id)).rerun_requested
    await scheduler.pause_task(task_id)
    assert not (await scheduler.get_task(task_id)).rerun_requested
    calls.gates[1].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await settle()
    assert await is_idle(scheduler, task_id)
    assert len(calls.calls) == 1


@pytest.mark.parametrize("delay", [-1, float("nan"), float("inf"), "1", True, None])
async def test_resume_rejects_bad_delays(scheduler: AsyncQuiv, delay: Any) -> None:
    task_id = await scheduler.add_task("p", Calls(), interval=10, delay=5)
    await scheduler.pause_task(task_id)
    with pytest.raises(ConfigurationError, match="delay"):
        await scheduler.resume_task(task_id, delay=delay)
    assert (await scheduler.get_task(task_id)).status is TaskStatus.PAUSED


@pytest.mark.parametrize("method", ["pause_task", "resume_task", "remove_task", "get_task"])
async def test_task_methods_on_unknown_ids(scheduler: AsyncQuiv, method: str) -> None:
    with pytest.raises(TaskNotFoundError, match="nope"):
        await getattr(scheduler, method)("nope")
    with pytest.raises(ConfigurationError, match="task_id"):
        await getattr(scheduler, method)(123)


# -- remove ----------------------------------------------------------------------------


async def test_remove_an_idle_task(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("r", Calls(), interval=10)
    first = await scheduler.wait_for_task(task_id, timeout=WAIT)
    errors: list[BaseException] = []

    async def wait() -> None:
        try:
            await scheduler.wait_for_task(task_id, timeout=WAIT)
        except TaskNotFoundError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await settle()
        await scheduler.remove_task(task_id)
    assert len(errors) == 1
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(task_id)
    with pytest.raises(TaskNotFoundError):
        await scheduler.remove_task(task_id)
    [removed] = [r.task for r in recorder.records if r.event is Event.TASK_REMOVED]
    assert removed.id == task_id
    assert removed.status is TaskStatus.ACTIVE  # the snapshot before removal
    await advance_to(clock, 100)
    assert await scheduler.get_all_tasks() == []
    assert [j.id for j in await scheduler.get_all_jobs(task_id=task_id)] == [first.id]
    assert (await scheduler.get_job(first.id)).status is JobStatus.COMPLETED
    assert recorder.count(Event.JOB_STARTED) == 1


# -- update_task -------------------------------------------------------------------------


async def test_update_task_fields(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    def progress(**payload: Any) -> None:
        pass

    task_id = await scheduler.add_task("u", Calls(), interval=10, delay=100)
    task = await scheduler.update_task(
        task_id,
        task_name="renamed",
        fixed_interval=False,
        args=(1, 2),
        kwargs={"a": 1},
        timeout=3,
        max_retries=2,
        retry_backoff=4,
        jitter=0.5,
        progress_callback=progress,
    )
    assert isinstance(task, Task)
    assert task == await scheduler.get_task(task_id)
    assert task.task_name == "renamed"
    assert task.fixed_interval is False
    assert task.args == (1, 2)
    assert task.kwargs == {"a": 1}
    assert task.timeout_seconds == 3
    assert task.max_retries == 2
    assert task.retry_backoff_seconds == 4
    assert task.jitter_seconds == 0.5
    assert task.interval_seconds == 10
    await recorder.wait_count(Event.TASK_UPDATED, 1)
    assert [r.task for r in recorder.records if r.event is Event.TASK_UPDATED] == [task]
    # None disables the timeout
    assert (await scheduler.update_task(task_id, timeout=None)).timeout_seconds is None
    # an empty update changes nothing and still reports
    before = await scheduler.get_task(task_id)
    assert await scheduler.update_task(task_id) == before
    await recorder.wait_count(Event.TASK_UPDATED, 3)


async def test_updating_one_task_leaves_tasks_with_equal_settings_alone(
    scheduler: AsyncQuiv,
) -> None:
    """Tasks with equal run settings share them; an update gives one its own."""
    first = await scheduler.add_task("a", Calls(), interval=10, delay=100, timeout=2)
    second = await scheduler.add_task("b", Calls(), interval=10, delay=100, timeout=2)
    await scheduler.update_task(first, timeout=7, max_retries=3, misfire_grace=5)
    changed, kept = await scheduler.get_task(first), await scheduler.get_task(second)
    assert (changed.timeout_seconds, changed.max_retries, changed.misfire_grace_seconds) == (
        7,
        3,
        5,
    )
    assert (kept.timeout_seconds, kept.max_retries, kept.misfire_grace_seconds) == (2, 0, None)


async def test_updated_arguments_reach_the_next_run(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    calls = Calls()
    task_id = await scheduler.add_task("u", calls, interval=10, args=(1,), kwargs={"k": 1})
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await scheduler.update_task(task_id, args=[2], kwargs={"k": 2})
    await advance_to(clock, 10)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    assert calls.calls == [((1,), {"k": 1}), ((2,), {"k": 2})]


async def test_update_interval_reschedules_from_now(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("u", Calls(), interval=100)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 20)
    task = await scheduler.update_task(task_id, interval=5)
    assert task.interval_seconds == 5
    await advance_to(clock, 24.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 25)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    await advance_to(clock, 30)
    await recorder.wait_count(Event.JOB_COMPLETED, 3)


async def test_update_run_at(scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder) -> None:
    task_id = await scheduler.add_task("u", Calls(), interval=1000, delay=1000)
    when = fake_wall_now(clock) + timedelta(seconds=30)
    task = await scheduler.update_task(task_id, run_at=when)
    assert task.next_run_at == when  # exactly the wall time asked for
    await advance_to(clock, 28)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 31)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)


async def test_update_run_at_while_running_applies_after_the_job(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("u", calls, interval=10)
    await calls.blocked_in(1)
    when = fake_wall_now(clock) + timedelta(seconds=50)
    await scheduler.update_task(task_id, run_at=when)
    calls.gates[1].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 48)  # not on the old 10 s grid
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 51)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)


async def test_update_run_at_while_paused_applies_on_resume(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("u", Calls(), interval=10, delay=5)
    await scheduler.pause_task(task_id)
    await scheduler.update_task(task_id, run_at=fake_wall_now(clock) + timedelta(seconds=40))
    assert (await scheduler.get_task(task_id)).status is TaskStatus.PAUSED
    await advance_to(clock, 45)
    assert await is_idle(scheduler, task_id)
    await scheduler.resume_task(task_id)
    await advance_to(clock, 45)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)


async def test_update_interval_on_a_run_once_task_is_rejected(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("once", Calls(), run_once=True, delay=100)
    with pytest.raises(ConfigurationError, match="interval"):
        await scheduler.update_task(task_id, interval=5)
    task = (await scheduler.get_all_tasks(include_run_once=True))[0]
    assert task.interval_seconds is None
    assert task.run_once


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task_name", ""),
        ("task_name", 3),
        ("interval", 0),
        ("interval", float("nan")),
        ("interval", True),
        ("fixed_interval", 1),
        ("args", "abc"),
        ("kwargs", [("a", 1)]),
        ("kwargs", {1: 2}),
        ("timeout", -1),
        ("timeout", 0),
        ("max_retries", 1.5),
        ("max_retries", -1),
        ("retry_backoff", 0),
        ("jitter", -0.1),
        ("jitter", float("inf")),
        ("progress_callback", "not callable"),
        ("run_at", "2030-01-01"),
        ("run_at", 0),
    ],
)
async def test_a_rejected_update_changes_nothing(
    scheduler: AsyncQuiv, recorder: Recorder, field: str, value: Any
) -> None:
    task_id = await scheduler.add_task("u", Calls(), interval=10, delay=5, args=(1,))
    before = await scheduler.get_task(task_id)
    valid = {"task_name": "ok", "max_retries": 7}  # valid changes in the same call
    with pytest.raises((ConfigurationError, TypeError)) as info:
        await scheduler.update_task(task_id, **valid, **{field: value})
    assert field in str(info.value)
    assert await scheduler.get_task(task_id) == before
    await settle()
    assert recorder.count(Event.TASK_UPDATED) == 0


async def test_update_interval_and_run_at_together_is_rejected(scheduler: AsyncQuiv) -> None:
    task_id = await scheduler.add_task("u", Calls(), interval=10)
    with pytest.raises(ConfigurationError, match="interval or run_at"):
        await scheduler.update_task(task_id, interval=5, run_at=datetime.now(timezone.utc))


async def test_update_unknown_task(scheduler: AsyncQuiv) -> None:
    with pytest.raises(TaskNotFoundError):
        await scheduler.update_task("nope", task_name="x")


# -- run_task_immediately -------------------------------------------------------------------


async def test_run_immediately_keeps_the_schedule(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    calls = Calls()
    task_id = await scheduler.add_task("now", calls, interval=10, delay=100)
    await scheduler.run_task_immediately(task_id)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await advance_to(clock, 99.99)  # the first scheduled run is still at 100
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 100)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    await advance_to(clock, 103)
    await scheduler.run_task_immediately(task_id)
    await recorder.wait_count(Event.JOB_COMPLETED, 3)
    await advance_to(clock, 109.99)
    assert await is_idle(scheduler, task_id)
    await advance_to(clock, 110)
    await recorder.wait_count(Event.JOB_COMPLETED, 4)


async def test_run_immediately_after_current(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("rerun", calls, interval=1000, jitter=100)
    await calls.blocked_in(1)
    with pytest.raises(TaskRunningError):
        await scheduler.run_task_immediately(task_id)
    await scheduler.run_task_immediately(task_id, after_current=True)
    assert (await scheduler.get_task(task_id)).rerun_requested
    calls.gates[1].set()
    await recorder.wait_count(Event.JOB_COMPLETED, 2)  # ran again right away, no time passed
    assert clock.now() == 0
    task = await scheduler.get_task(task_id)
    assert not task.rerun_requested
    assert task.status is TaskStatus.ACTIVE


async def test_run_immediately_refusals(
    scheduler: AsyncQuiv, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    once = await scheduler.add_task("once", calls, run_once=True)
    await calls.blocked_in(1)
    with pytest.raises(TaskRunningError):
        await scheduler.run_task_immediately(once, after_current=True)
    with pytest.raises(TaskRunningError):
        await scheduler.run_task_immediately(once)
    paused = await scheduler.add_task("paused", Calls(), interval=10, delay=5)
    await scheduler.pause_task(paused)
    with pytest.raises(TaskNotActiveError) as info:
        await scheduler.run_task_immediately(paused)
    assert type(info.value) is TaskNotActiveError
    with pytest.raises(TaskNotFoundError):
        await scheduler.run_task_immediately("nope")
    with pytest.raises(ConfigurationError, match="after_current"):
        await scheduler.run_task_immediately(paused, after_current=1)  # type: ignore[arg-type]
    calls.gates[1].set()
    await scheduler.wait_for_task(once, timeout=WAIT)
    with pytest.raises(TaskNotFoundError):  # a finished run-once task is gone
        await scheduler.run_task_immediately(once)


async def test_run_immediately_during_a_retry_wait(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    attempts: list[int] = []

    def flaky(_job_id: str) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("first")

    task_id = await scheduler.add_task("r", flaky, interval=1000, max_retries=3, retry_backoff=50)
    await recorder.wait_count(Event.JOB_RETRYING, 1)
    await scheduler.run_task_immediately(task_id)
    [job] = await recorder.wait_count(Event.JOB_COMPLETED, 1)
    assert job.attempt == 2
    assert (await scheduler.get_task(task_id)).retry_attempt == 0


# -- waits ---------------------------------------------------------------------------------


async def test_wait_for_task_returns_after_the_task_record_reflects_the_end(
    scheduler: AsyncQuiv, clock: FakeClock, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("w", calls, interval=10)
    once_id = await scheduler.add_task("once", Calls(), run_once=True, delay=1)
    await calls.blocked_in(1)
    results: list[Any] = []

    async def wait() -> None:
        job = await scheduler.wait_for_task(task_id, timeout=WAIT)
        results.append((job, await scheduler.get_task(task_id)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await settle()
        calls.gates[1].set()
    [(job, task)] = results
    assert job.status is JobStatus.COMPLETED
    assert task.status is TaskStatus.ACTIVE
    assert task.next_run_at is not None
    await clock.advance(1)
    once_job = await scheduler.wait_for_task(once_id, timeout=WAIT)
    assert once_job.status is JobStatus.COMPLETED
    with pytest.raises(TaskNotFoundError):
        await scheduler.get_task(once_id)


async def test_wait_for_job(scheduler: AsyncQuiv, recorder: Recorder, gates: Gates) -> None:
    calls = Calls(gates, block=(1,))
    await scheduler.add_task("w", calls, run_once=True)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    results: list[Job] = []

    async def wait() -> None:
        results.append(await scheduler.wait_for_job(started.id, timeout=WAIT))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        tg.start_soon(wait)
        await settle()
        calls.gates[1].set()
    assert len(results) == 2
    assert results[0] == results[1]
    assert results[0].status is JobStatus.COMPLETED
    # a finished job returns at once, even with a zero timeout
    assert await scheduler.wait_for_job(started.id, timeout=0) == results[0]


async def test_waits_time_out_with_the_builtin_timeout_error(
    scheduler: AsyncQuiv, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("slow", calls, interval=10)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    with pytest.raises(TimeoutError):
        await scheduler.wait_for_job(started.id, timeout=0.01)
    with pytest.raises(TimeoutError):
        await scheduler.wait_for_task(task_id, timeout=0)
    paused = await scheduler.add_task("paused", Calls(), interval=10, delay=5)
    await scheduler.pause_task(paused)
    with pytest.raises(TimeoutError):
        await scheduler.wait_for_task(paused, timeout=0.01)
    assert scheduler._engine.waiting_tasks() == 0  # nobody waits: no registry left behind
    # timed-out waiters are forgotten; the job still ends normally
    calls.gates[1].set()
    assert (await scheduler.wait_for_job(started.id, timeout=WAIT)).status is JobStatus.COMPLETED


async def test_a_cancelled_waiter_is_forgotten(
    scheduler: AsyncQuiv, recorder: Recorder, gates: Gates
) -> None:
    calls = Calls(gates, block=(1,))
    task_id = await scheduler.add_task("slow", calls, interval=10)
    [started] = await recorder.wait_count(Event.JOB_STARTED, 1)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await scheduler.wait_for_task(task_id)
    with anyio.move_on_after(0.01):
        await scheduler.wait_for_job(started.id)
    calls.gates[1].set()
    assert (await scheduler.wait_for_job(started.id, timeout=WAIT)).status is JobStatus.COMPLETED


async def test_wait_on_unknown_ids(scheduler: AsyncQuiv) -> None:
    with pytest.raises(JobNotFoundError, match="nope"):
        await scheduler.wait_for_job("nope", timeout=1)
    with pytest.raises(TaskNotFoundError, match="nope"):
        await scheduler.wait_for_task("nope", timeout=1)
    with pytest.raises(JobNotFoundError):
        await scheduler.get_job("nope")


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1", True])
async def test_wait_rejects_bad_timeouts(scheduler: AsyncQuiv, timeout: Any) -> None:
    task_id = await scheduler.add_task("t", Calls(), interval=10)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    with pytest.raises(ConfigurationError, match="timeout"):
        await scheduler.wait_for_job(job.id, timeout=timeout)
    with pytest.raises(ConfigurationError, match="timeout"):
        await scheduler.wait_for_task(task_id, timeout=timeout)


# -- queries -------------------------------------------------------------------------------


async def test_get_all_tasks_filters_and_orders(scheduler: AsyncQuiv, gates: Gates) -> None:
    calls = Calls(gates, block=(1,))
    late = await scheduler.add_task("late", Calls(), interval=10, delay=300)
    early = await scheduler.add_task("early", Calls(), interval=10, delay=100)
    middle = await scheduler.add_task("middle", Calls(), interval=10, delay=200)
    once = await scheduler.add_task("once", Calls(), run_once=True, delay=50)
    paused = await scheduler.add_task("early", Calls(), interval=10, delay=150)
    await scheduler.pause_task(paused)
    running = await scheduler.add_task("running", calls, interval=10)
    await calls.blocked_in(1)

    def ids(tasks: list[Task]) -> list[str]:
        return [t.id for t in tasks]

    # ordered by next run; tasks without one (paused, running) last
    everything = await scheduler.get_all_tasks(include_run_once=True)
    assert ids(everything)[:4] == [once, early, middle, late]
    assert set(ids(everything)[4:]) == {paused, running}
    assert ids(await scheduler.get_all_tasks())[:3] == [early, middle, late]
    assert once not in ids(await scheduler.get_all_tasks())
    assert ids(await scheduler.get_all_tasks(status="paused")) == [paused]
    assert ids(await scheduler.get_all_tasks(status=TaskStatus.RUNNING)) == [running]
    assert set(ids(await scheduler.get_all_tasks(task_name="early"))) == {early, paused}
    assert ids(await scheduler.get_all_tasks(limit=2)) == [early, middle]
    assert ids(await scheduler.get_all_tasks(limit=2, offset=1)) == [middle, late]
    assert ids(await scheduler.get_all_tasks(offset=10)) == []
    assert ids(await scheduler.get_all_tasks(limit=0)) == []
    calls.gates[1].set()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"status": "sleeping"}, "status"),
        ({"status": 3}, "status"),
        ({"limit": -1}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": None}, "offset"),
        ({"include_run_once": "yes"}, "include_run_once"),
        ({"task_name": 5}, "task_name"),
    ],
)
async def test_get_all_tasks_rejects_bad_filters(
    scheduler: AsyncQuiv, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        await scheduler.get_all_tasks(**kwargs)


async def test_get_all_jobs_filters_and_orders(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    def fail() -> None:
        raise RuntimeError("no")

    a = await scheduler.add_task("a", Calls(), interval=10)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    b = await scheduler.add_task("b", fail, run_once=True)
    await recorder.wait_count(Event.JOB_FAILED, 1)
    await clock.advance(10)
    await recorder.wait_count(Event.JOB_COMPLETED, 2)
    jobs = await scheduler.get_all_jobs()
    assert len(jobs) == 3
    starts = [j.started_at for j in jobs]
    assert starts == sorted(starts, reverse=True)  # newest first
    oldest_first = await scheduler.get_all_jobs(descending=False)
    assert oldest_first == jobs[::-1]
    assert {j.task_id for j in await scheduler.get_all_jobs(task_id=a)} == {a}
    assert len(await scheduler.get_all_jobs(task_id=a)) == 2
    [failed] = await scheduler.get_all_jobs(status="failed")
    assert failed.task_id == b
    assert await scheduler.get_all_jobs(status=JobStatus.CANCELLED) == []
    assert await scheduler.get_all_jobs(limit=1) == jobs[:1]
    assert await scheduler.get_all_jobs(limit=1, offset=1) == jobs[1:2]
    middle = jobs[1].started_at
    assert middle is not None
    assert await scheduler.get_all_jobs(since=middle) == jobs[:2]
    assert await scheduler.get_all_jobs(until=middle) == jobs[2:]
    naive = middle.astimezone(timezone.utc).replace(tzinfo=None)
    assert await scheduler.get_all_jobs(since=naive) == jobs[:2]  # naive means UTC
    by_end = await scheduler.get_all_jobs(order_by="ended_at")
    assert [j.ended_at for j in by_end] == sorted((j.ended_at for j in by_end), reverse=True)
    assert len(await scheduler.get_all_jobs(order_by="scheduled_at")) == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"status": "done"}, "status"),
        ({"task_id": 5}, "task_id"),
        ({"since": "yesterday"}, "since"),
        ({"until": 0}, "until"),
        ({"order_by": "id"}, "order_by"),
        ({"descending": "no"}, "descending"),
        ({"limit": -5}, "limit"),
        ({"offset": 1.0}, "offset"),
    ],
)
async def test_get_all_jobs_rejects_bad_filters(
    scheduler: AsyncQuiv, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        await scheduler.get_all_jobs(**kwargs)


async def test_get_job_rejects_non_string_ids(scheduler: AsyncQuiv) -> None:
    with pytest.raises(ConfigurationError, match="job_id"):
        await scheduler.get_job(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="job_id"):
        await scheduler.wait_for_job(None)  # type: ignore[arg-type]


async def test_stats(scheduler: AsyncQuiv, recorder: Recorder, gates: Gates) -> None:
    calls = Calls(gates, block=(1,))
    await scheduler.add_task("done", Calls(), run_once=True)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await scheduler.add_task("running", calls, interval=10)
    await calls.blocked_in(1)
    paused = await scheduler.add_task("paused", Calls(), interval=10, delay=9)
    await scheduler.pause_task(paused)
    soon = await scheduler.add_task("soon", Calls(), interval=10, delay=3)
    await scheduler.add_task("later", Calls(), interval=10, delay=30)
    stats = await scheduler.stats()
    assert stats.active_jobs == 1
    assert stats.pool_size == 4
    assert stats.pool_utilization == 0.25
    assert dict(stats.tasks_by_status) == {"active": 2, "running": 1, "paused": 1}
    assert stats.next_run_at == (await scheduler.get_task(soon)).next_run_at
    assert stats.job_history_count == 2
    assert stats.loop_alive
    calls.gates[1].set()


async def test_stats_is_a_consistent_snapshot(clock: FakeClock) -> None:
    """Counts come from one moment, even though counting the history awaits the store."""
    async with AsyncQuiv(clock=clock, pool_size=50) as s:
        for i in range(30):
            await s.add_task(f"t{i}", Calls(), interval=10, delay=1)
        await clock.advance(1)  # 30 tasks become due while stats() runs
        stats = await s.stats()
        assert stats.tasks_by_status["running"] + stats.tasks_by_status["active"] == 30
        assert stats.active_jobs == stats.tasks_by_status["running"]


async def test_job_events_carry_the_task_as_it_is_after_the_job(
    scheduler: AsyncQuiv, recorder: Recorder
) -> None:
    task_id = await scheduler.add_task("t", Calls(), interval=10)
    [job] = await recorder.wait_count(Event.JOB_COMPLETED, 1)
    [record] = [r for r in recorder.records if r.event is Event.JOB_COMPLETED]
    assert record.task.id == task_id
    assert record.task.status is TaskStatus.ACTIVE
    assert record.task.next_run_at is not None
    [start] = [r for r in recorder.records if r.event is Event.JOB_STARTED]
    assert start.task.status is TaskStatus.RUNNING
    assert start.job is not None and start.job.status is JobStatus.RUNNING


async def test_task_added_event(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    task_id = await scheduler.add_task("t", Calls(), interval=10, delay=5, args=(1,))
    await recorder.wait_count(Event.TASK_ADDED, 1)
    task = recorder.records[0].task
    assert task.id == task_id
    assert task.args == (1,)
    assert task.status is TaskStatus.ACTIVE


async def test_updated_timeout_and_retries_apply_to_the_next_run(
    scheduler: AsyncQuiv, clock: FakeClock, recorder: Recorder
) -> None:
    def fails_after_stop(_stop_event: threading.Event) -> None:
        if not _stop_event.wait(WAIT * 2):
            raise RuntimeError("not stopped")

    attempts: list[int] = []

    def flaky(_job_id: str) -> None:
        attempts.append(1)
        raise RuntimeError("again")

    slow = await scheduler.add_task("slow", fails_after_stop, interval=100, delay=1)
    await scheduler.update_task(slow, timeout=2)
    await advance_to(clock, 1)
    await recorder.wait_count(Event.JOB_STARTED, 1)
    await advance_to(clock, 3)
    [job] = await recorder.wait_count(Event.JOB_CANCELLED, 1)
    assert job.error_message == "timed out after 2 s"

    bad = await scheduler.add_task("bad", flaky, interval=100, delay=7)  # due at 10
    await scheduler.update_task(bad, max_retries=1, retry_backoff=5)
    await advance_to(clock, 10)
    await recorder.wait_count(Event.JOB_RETRYING, 1)
    await advance_to(clock, 15)
    await recorder.wait_count(Event.JOB_FAILED, 2)
    assert len(attempts) == 2
    assert recorder.count(Event.JOB_RETRYING) == 1


async def test_clearing_the_progress_callback(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    delivered: list[dict[str, Any]] = []

    def hook_user(_progress_hook: Any) -> None:
        _progress_hook(step=1)

    task_id = await scheduler.add_task(
        "p", hook_user, interval=100, delay=1, progress_callback=lambda **p: delivered.append(p)
    )
    task = await scheduler.update_task(task_id, progress_callback=None)
    assert task.id == task_id
    await scheduler.run_task_immediately(task_id)
    await recorder.wait_count(Event.JOB_COMPLETED, 1)
    await settle()
    assert delivered == []


def fake_wall_now(clock: FakeClock) -> datetime:
    """The fake clock's wall time (it starts on a whole second, not at the real time)."""
    return datetime.fromtimestamp(clock.wall_time(), timezone.utc)
