"""AsyncQuiv lifecycle: start, stop, host cancellation, shutdown bounds, leftovers."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import (
    WAIT,
    Gates,
    Recorder,
    handler_threads,
    join_pool_threads,
    settle,
    threads_running_quiv_code,
)

from quiv import AsyncQuiv, Event, JobStatus, SchedulerStoppedError, TaskStatus
from quiv._core.outcomes import ABANDONED_REASON, SHUTDOWN_REASON
from quiv.testing import FakeClock


def _is_idle_worker(thread: threading.Thread) -> bool:
    # anyio (asyncio) and trio keep idle worker threads cached for reuse.
    return thread.name == "AnyIO worker thread" or thread.name.startswith("Trio thread")


async def test_async_with_starts_and_stops() -> None:
    s = AsyncQuiv(clock=FakeClock())
    assert not s.is_running
    assert "new" in repr(s)
    async with s as entered:
        assert entered is s
        assert s.is_running
        assert (await s.stats()).loop_alive
        assert s.portal is not None
    assert not s.is_running
    assert "stopped" in repr(s)


async def test_a_scheduler_runs_only_once() -> None:
    s = AsyncQuiv(clock=FakeClock())
    async with s:
        pass
    with pytest.raises(SchedulerStoppedError, match="runs once"):
        async with s:
            pass


async def test_tasks_declared_before_start_run_once_it_starts(clock: FakeClock) -> None:
    s = AsyncQuiv(clock=clock)
    once = await s.add_task("once", lambda: None, run_once=True)
    later = await s.add_task("later", lambda: None, interval=60, delay=30)
    paused = await s.add_task("paused", lambda: None, interval=60)
    await s.pause_task(paused)
    assert (await s.get_task(later)).next_run_at is not None
    assert [t.id for t in await s.get_all_tasks()] == [paused, later]
    with pytest.raises(SchedulerStoppedError, match="not running"):
        s.cancel_job("x")
    with pytest.raises(SchedulerStoppedError, match="not running"):
        await s.get_all_jobs()
    with pytest.raises(SchedulerStoppedError):
        _ = s.portal
    async with s:
        rec = Recorder(s)
        assert (await s.wait_for_task(once, timeout=WAIT)).status is JobStatus.COMPLETED
        assert (await s.get_task(paused)).status is TaskStatus.PAUSED
        await clock.advance(30)
        job = await s.wait_for_task(later, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED
        assert rec.count(Event.JOB_COMPLETED, task_id=paused) == 0


async def test_an_async_quiv_runs_once() -> None:
    s = AsyncQuiv()
    await s.add_task("t", lambda: None, interval=1)
    await s.shutdown()  # never started: a no-op that drops the declared task
    with pytest.raises(SchedulerStoppedError):
        await s.add_task("t", lambda: None, interval=1)
    with pytest.raises(SchedulerStoppedError):
        async with s:
            pass


def _every_coroutine_method(
    s: AsyncQuiv,
    task_id: str,
    job_id: str,
    *,
    waited_task_id: str | None = None,
    timeout: float | None = None,
) -> dict[str, Callable[[], Awaitable[object]]]:
    """A call of each coroutine method of *s*, by name."""
    waited = task_id if waited_task_id is None else waited_task_id
    return {
        "add_task": lambda: s.add_task("t", lambda: None, interval=1),
        "update_task": lambda: s.update_task(task_id, task_name="changed"),
        "remove_task": lambda: s.remove_task(task_id),
        "pause_task": lambda: s.pause_task(task_id),
        "resume_task": lambda: s.resume_task(task_id),
        "run_task_immediately": lambda: s.run_task_immediately(task_id),
        "get_task": lambda: s.get_task(task_id),
        "get_all_tasks": lambda: s.get_all_tasks(),
        "get_job": lambda: s.get_job(job_id),
        "get_all_jobs": lambda: s.get_all_jobs(),
        "wait_for_job": lambda: s.wait_for_job(job_id, timeout=timeout),
        "wait_for_task": lambda: s.wait_for_task(waited, timeout=timeout),
        "stats": lambda: s.stats(),
    }


async def test_every_async_method_is_a_checkpoint() -> None:
    """trio's rule: an ``await`` of any of them raises in a cancelled scope, and changes nothing."""
    async with AsyncQuiv(pool_size=1) as s:
        task_id = await s.add_task("t", lambda: None, interval=3600, delay=3600)
        job_task = await s.add_task("j", lambda: None, run_once=True)
        job = await s.wait_for_task(job_task, timeout=WAIT)
        # the waits would return at once: the job ended, the task ran once
        calls = _every_coroutine_method(s, task_id, job.id, waited_task_id=job_task)
        for name, call in calls.items():
            with anyio.CancelScope() as scope:
                scope.cancel()
                await call()
                pytest.fail(f"{name} returned in a cancelled scope")  # pragma: no cover
            assert scope.cancelled_caught, name
        task = await s.get_task(task_id)
        assert (task.task_name, task.status) == ("t", TaskStatus.ACTIVE)
        assert [t.id for t in await s.get_all_tasks()] == [task_id]  # nothing was added
        assert await s.get_all_jobs(task_id=task_id) == []  # and nothing ran


async def test_every_method_raises_after_exit(gates: Gates) -> None:
    async with AsyncQuiv(clock=FakeClock()) as s:
        task_id = await s.add_task("t", lambda: None, interval=10)
        job = await s.wait_for_task(task_id, timeout=WAIT)
    calls: dict[str, Any] = _every_coroutine_method(s, task_id, job.id, timeout=1)
    for name, call in calls.items():
        with pytest.raises(SchedulerStoppedError, match="shut down"):
            await call()
        assert name  # keeps the name in the traceback on failure
    with pytest.raises(SchedulerStoppedError):
        s.cancel_job(job.id)
    with pytest.raises(SchedulerStoppedError):
        _ = s.portal
    assert not s.is_running
    await s.shutdown()  # a second shutdown is a no-op


async def _start_blocked_jobs(s: AsyncQuiv, rec: Recorder) -> tuple[str, str]:
    async def forever_async() -> None:
        await anyio.sleep(3600)  # real time: only cancellation ends it

    def waits_for_stop(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT * 2)

    sync_id = await s.add_task("sync", waits_for_stop, interval=60)
    async_id = await s.add_task("async", forever_async, interval=60)
    await rec.wait_count(Event.JOB_STARTED, 2)
    return sync_id, async_id


async def test_leaving_the_block_cancels_running_jobs_and_records_them(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        rec = Recorder(s)
        await _start_blocked_jobs(s, rec)
    cancelled = rec.jobs(Event.JOB_CANCELLED)
    assert sorted(j.task_name for j in cancelled) == ["async", "sync"]
    assert {j.error_message for j in cancelled} == {SHUTDOWN_REASON}
    assert handler_threads() == []
    # The final states were written: a new scheduler on the same file sees them.
    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s2:
        jobs = await s2.get_all_jobs()
    assert sorted((j.task_name, j.status) for j in jobs) == [
        ("async", JobStatus.CANCELLED),
        ("sync", JobStatus.CANCELLED),
    ]
    assert all(j.ended_at is not None and j.error_message == SHUTDOWN_REASON for j in jobs)


async def test_host_cancelling_the_block_cancels_running_jobs() -> None:
    with anyio.fail_after(WAIT):
        with anyio.CancelScope() as host:
            async with AsyncQuiv(clock=FakeClock()) as s:
                rec = Recorder(s)
                await _start_blocked_jobs(s, rec)
                host.cancel()
                await anyio.sleep_forever()
    assert host.cancelled_caught
    assert not s.is_running
    cancelled = rec.jobs(Event.JOB_CANCELLED)
    assert sorted(j.task_name for j in cancelled) == ["async", "sync"]
    assert all(j.status is JobStatus.CANCELLED for j in cancelled)
    assert handler_threads() == []


async def test_an_error_in_the_block_propagates_and_stops_the_scheduler() -> None:
    with pytest.raises(ZeroDivisionError):
        async with AsyncQuiv(clock=FakeClock()) as s:
            rec = Recorder(s)
            await _start_blocked_jobs(s, rec)
            1 / 0  # noqa: B018
    assert not s.is_running
    assert rec.count(Event.JOB_CANCELLED) == 2


async def test_pending_waiters_get_scheduler_stopped() -> None:
    results: dict[str, BaseException] = {}

    async def wait(name: str, coro: Any) -> None:
        try:
            await coro
        except BaseException as exc:
            results[name] = exc

    async with anyio.create_task_group() as tg:
        async with AsyncQuiv(clock=FakeClock()) as s:
            rec = Recorder(s)
            sync_id, _ = await _start_blocked_jobs(s, rec)
            running = rec.jobs(Event.JOB_STARTED, task_id=sync_id)[0]
            idle = await s.add_task("idle", lambda: None, interval=60, delay=3600)
            tg.start_soon(wait, "job", s.wait_for_job(running.id, timeout=WAIT))
            tg.start_soon(wait, "running task", s.wait_for_task(sync_id, timeout=WAIT))
            tg.start_soon(wait, "idle task", s.wait_for_task(idle, timeout=WAIT))
            await settle()
    assert set(results) == {"job", "running task", "idle task"}
    for name, exc in results.items():
        assert isinstance(exc, SchedulerStoppedError), (name, exc)


async def test_shutdown_is_bounded_and_abandons_a_stuck_sync_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def stubborn() -> None:  # ignores its stop event
        try:
            release.wait(WAIT * 2)
        finally:
            finished.set()

    try:
        async with AsyncQuiv(clock=FakeClock()) as s:
            rec = Recorder(s)
            await s.add_task("stubborn", stubborn, run_once=True)
            polite = await s.add_task("polite", lambda _stop_event: _stop_event.wait(9), interval=9)
            await rec.wait_count(Event.JOB_STARTED, 2)
            with caplog.at_level(logging.WARNING, logger="quiv"), anyio.fail_after(WAIT):
                await s.shutdown(timeout=0.2)
            assert not s.is_running
        # shutdown returned while the handler still ran: it did not wait for it
        # (how close to its timeout it returns is measured in bench/, W9)
        assert not finished.is_set()
        by_name = {j.task_name: j for j in rec.jobs(Event.JOB_CANCELLED)}
        assert by_name["stubborn"].error_message == ABANDONED_REASON
        assert "abandoned at shutdown" in by_name["stubborn"].error_message
        assert by_name["polite"].error_message == SHUTDOWN_REASON
        assert by_name["polite"].task_id == polite
        warnings = [r for r in caplog.records if "abandoned" in r.getMessage()]
        assert len(warnings) == 1
        assert "stubborn" in warnings[0].getMessage()
        assert "polite" not in warnings[0].getMessage()
    finally:
        release.set()
    assert await anyio.to_thread.run_sync(finished.wait, WAIT)
    await join_pool_threads()


async def test_shutdown_timeout_setting_applies_when_leaving_the_block() -> None:
    release = threading.Event()
    try:
        with anyio.fail_after(WAIT):
            async with AsyncQuiv(clock=FakeClock(), shutdown_timeout=0.05) as s:
                rec = Recorder(s)
                await s.add_task("stuck", lambda: release.wait(WAIT * 2), run_once=True)
                await rec.wait_count(Event.JOB_STARTED, 1)
        assert rec.jobs(Event.JOB_CANCELLED)[0].error_message == ABANDONED_REASON
    finally:
        release.set()
    await join_pool_threads()


async def test_shutdown_inside_the_block_then_exit() -> None:
    async with AsyncQuiv(clock=FakeClock()) as s:
        await s.shutdown()
        assert not s.is_running
        with pytest.raises(SchedulerStoppedError):
            await s.get_all_tasks()
        await s.shutdown()
    assert not s.is_running


async def test_no_thread_or_temp_file_is_left_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(threading.enumerate())

    async def async_job() -> None:
        await anyio.lowlevel.checkpoint()

    async with AsyncQuiv(clock=FakeClock(), pool_size=3) as s:
        rec = Recorder(s)
        assert os.listdir(tmp_path), "the temporary database lives in the temp dir"
        for i in range(5):
            await s.add_task(f"sync{i}", lambda: None, run_once=True)
            await s.add_task(f"async{i}", async_job, run_once=True)
        await rec.wait_count(Event.JOB_COMPLETED, 10)
    assert os.listdir(tmp_path) == []
    assert threads_running_quiv_code() == []
    assert handler_threads() == []
    new = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert [t.name for t in new if not _is_idle_worker(t)] == []


async def test_stats_and_timezone_display() -> None:
    async with AsyncQuiv(clock=FakeClock(), pool_size=3, timezone="Europe/Paris") as s:
        assert str(s.timezone) == "Europe/Paris"
        stats = await s.stats()
        assert stats.pool_size == 3
        assert stats.active_jobs == 0
        assert stats.pool_utilization == 0.0
        assert stats.tasks_by_status == {"active": 0, "running": 0, "paused": 0}
        assert stats.next_run_at is None
        task_id = await s.add_task("t", lambda: None, interval=10, delay=5)
        stats = await s.stats()
        assert stats.tasks_by_status["active"] == 1
        assert stats.next_run_at is not None
        assert stats.next_run_at.tzinfo is timezone.utc
        task = await s.get_task(task_id)
        assert task.next_run_at == stats.next_run_at
        assert isinstance(task.next_run_at, datetime)
        assert task.status is TaskStatus.ACTIVE


async def test_a_concurrent_shutdown_returns_only_once_the_scheduler_stopped() -> None:
    release = threading.Event()
    returned: list[str] = []

    def slow_to_stop(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT * 2)
        release.wait(WAIT * 2)  # keeps running a little after its stop event

    async def first() -> None:
        await s.shutdown()
        returned.append("first")

    async with AsyncQuiv(clock=FakeClock()) as s:
        rec = Recorder(s)
        await s.add_task("slow", slow_to_stop, run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await settle()
            assert not s.is_running  # the first call is in progress
            tg.start_soon(_release_soon, release)
            await s.shutdown()
            returned.append("second")
            assert rec.count(Event.JOB_CANCELLED) == 1  # the job's end was recorded
    assert sorted(returned) == ["first", "second"]


async def _release_soon(release: threading.Event) -> None:
    await settle()
    release.set()


async def test_shutdown_cancels_queued_jobs_without_calling_them(gates: Gates) -> None:
    called: list[str] = []
    blocker = gates.new()
    async with AsyncQuiv(clock=FakeClock(), pool_size=1) as s:
        rec = Recorder(s)
        await s.add_task("blocker", lambda _stop_event: _stop_event.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        for name in "abc":
            await s.add_task(name, called.append, run_once=True, args=(name,))
        await settle()
        assert (await s.stats()).active_jobs == 4
    blocker.set()
    cancelled = rec.jobs(Event.JOB_CANCELLED)
    assert sorted(j.task_name for j in cancelled) == ["a", "b", "blocker", "c"]
    assert all(j.error_message == SHUTDOWN_REASON for j in cancelled)
    assert [j.started_at is None for j in cancelled if j.task_name != "blocker"] == [True] * 3
    assert called == []


async def test_other_threads_use_the_portal(clock: FakeClock) -> None:
    async with AsyncQuiv(clock=clock) as s:
        rec = Recorder(s)

        def parent(_job_id: str) -> None:
            child = s.portal.call(lambda: s.add_task("child", lambda: None, interval=100))
            assert isinstance(child, str)
            assert s.portal.call(s.cancel_job, "unknown") is False
            assert s.portal.call(s.get_task, child).task_name == "child"

        async def async_parent() -> None:
            def add() -> str:
                return s.portal.call(lambda: s.add_task("async child", lambda: None, run_once=True))

            await anyio.to_thread.run_sync(add)

        await s.add_task("parent", parent, run_once=True)
        await s.add_task("async parent", async_parent, run_once=True)
        jobs = await rec.wait_count(Event.JOB_COMPLETED, 4)
    assert sorted(j.task_name for j in jobs) == ["async child", "async parent", "child", "parent"]
