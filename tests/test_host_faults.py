"""Faults of the host: its task group cancelled mid-run (or mid-start, or
mid-shutdown), the sync face's loop thread dying, shutdown under thousands of
queued jobs. Records are read back from a database file after the fact."""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import (
    WAIT,
    Gates,
    Recorder,
    join_pool_threads,
    join_threads,
    pool_threads,
    settle,
    threads_running_quiv_code,
)
from sync_helpers import no_leftovers, quiv_threads

from quiv import AsyncQuiv, Event, Job, JobStatus, Quiv, SchedulerStoppedError
from quiv._core.outcomes import ABANDONED_REASON, SHUTDOWN_REASON
from quiv._faces.loop_thread import Call
from quiv.testing import FakeClock

HAS_TRIO = importlib.util.find_spec("trio") is not None


async def records(db: Path) -> dict[str, Job]:
    """Every job record in the database file *db*, by task name."""
    async with AsyncQuiv(db_path=db) as s:
        return {job.task_name: job for job in await s.get_all_jobs()}


@pytest.fixture
def private_tempdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Temporary databases go here; the test checks it is empty at the end."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory


# -- the host task group cancelled ------------------------------------------------------


async def test_host_cancelled_mid_run_records_every_job(tmp_path: Path, gates: Gates) -> None:
    """Running (sync and async), queued and stuck jobs, then the host's scope is
    cancelled: the block exits while the stuck job still runs, every job has its
    final record, listeners still hear of it, and no handler thread is left."""
    db = tmp_path / "q.db"
    stuck = gates.new()
    started = threading.Semaphore(0)
    called: list[str] = []

    def polite(_stop_event: threading.Event) -> None:
        started.release()
        _stop_event.wait(WAIT * 2)

    async def async_polite() -> None:
        started.release()
        await anyio.sleep_forever()

    def stubborn() -> None:
        started.release()
        stuck.wait(WAIT * 2)

    with anyio.fail_after(WAIT), anyio.CancelScope() as host:
        async with AsyncQuiv(clock=FakeClock(), db_path=db, pool_size=3, shutdown_timeout=0.3) as s:
            rec = Recorder(s)
            for name, func in (("polite", polite), ("async", async_polite), ("stuck", stubborn)):
                await s.add_task(name, func, run_once=True)
            for _ in range(3):
                assert await anyio.to_thread.run_sync(started.acquire, True, WAIT)
            for i in range(5):
                await s.add_task(f"queued{i}", called.append, args=(i,), run_once=True)
            await settle()
            host.cancel()
            await anyio.sleep_forever()
    assert host.cancelled_caught
    assert not stuck.is_set()  # the block ended without waiting for the stuck job
    assert called == []
    assert rec.count(Event.JOB_CANCELLED) == 8
    stuck.set()
    await join_pool_threads()
    jobs = await records(db)
    assert {name: j.status for name, j in jobs.items()} == dict.fromkeys(
        ["polite", "async", "stuck", *(f"queued{i}" for i in range(5))], JobStatus.CANCELLED
    )
    assert jobs["polite"].error_message == jobs["async"].error_message == SHUTDOWN_REASON
    assert jobs["stuck"].error_message == ABANDONED_REASON
    assert all(jobs[f"queued{i}"].started_at is None for i in range(5))


async def test_host_deadline_expiring_mid_run(private_tempdir: Path) -> None:
    """The everyday form of a host cancellation: a deadline around the block."""
    ended: list[Job] = []
    with anyio.move_on_after(0.2) as host:
        async with AsyncQuiv(pool_size=2) as s:
            for event in (Event.JOB_COMPLETED, Event.JOB_CANCELLED):
                s.add_listener(event, lambda e, t, j: ended.append(j))
            await s.add_task("tick", lambda: None, interval=0.01)
            await s.add_task("sleepy", lambda _stop_event: _stop_event.wait(WAIT), interval=10)
            await anyio.sleep_forever()
    assert host.cancelled_caught
    cancelled = [j.task_name for j in ended if j.status is JobStatus.CANCELLED]
    # A tick may happen to be in flight at the deadline and be cancelled too.
    assert cancelled.count("sleepy") == 1 and set(cancelled) <= {"sleepy", "tick"}, cancelled
    assert sum(j.task_name == "tick" and j.status is JobStatus.COMPLETED for j in ended) >= 2
    assert os.listdir(private_tempdir) == []
    await join_pool_threads()


async def _start_cancelled_after(checkpoints: int) -> AsyncQuiv:
    """Start a scheduler in a host scope that is cancelled after *checkpoints* turns."""
    s = AsyncQuiv()
    with anyio.CancelScope() as host:

        async def cancel_later() -> None:
            for _ in range(checkpoints):
                await anyio.lowlevel.checkpoint()
            host.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_later)
            async with s:
                await anyio.sleep_forever()
    return s


async def test_host_cancelled_while_starting_leaves_nothing(private_tempdir: Path) -> None:
    threads = set(threading.enumerate())
    for checkpoints in range(6):  # cancel at successive points of the start
        s = await _start_cancelled_after(checkpoints)
        assert not s.is_running
        with pytest.raises(SchedulerStoppedError):
            await s.get_all_tasks()
    assert os.listdir(private_tempdir) == []
    assert await join_threads(pool_threads()) == []
    assert threads_running_quiv_code() == []
    new = {t.name for t in set(threading.enumerate()) - threads}
    assert all(name.startswith(("AnyIO worker", "Trio thread")) for name in new), new


async def test_host_cancelled_again_while_shutting_down(tmp_path: Path, gates: Gates) -> None:
    """Shutdown is shielded: a second cancellation does not cut it short (it
    still waits for a job that ends after it, and records are still written)
    and it still ends while a stuck job runs, at its timeout."""
    db = tmp_path / "q.db"
    stuck = gates.new()
    proceed = gates.new()
    entered = threading.Semaphore(0)
    stop_seen = threading.Event()

    def stubborn() -> None:
        entered.release()
        stuck.wait(WAIT * 2)

    def slow_to_stop(_stop_event: threading.Event) -> None:
        entered.release()
        if _stop_event.wait(WAIT):  # shutdown has begun: it set every stop event
            stop_seen.set()
            proceed.wait(WAIT)  # ends only after the second cancellation

    async def cancel_twice(scope: anyio.CancelScope) -> None:
        scope.cancel()
        assert await anyio.to_thread.run_sync(stop_seen.wait, WAIT)
        scope.cancel()
        await anyio.lowlevel.checkpoint()
        proceed.set()

    settings: dict[str, Any] = {"db_path": db, "pool_size": 2, "shutdown_timeout": 2.0}
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as outer:
            with anyio.CancelScope() as host:
                async with AsyncQuiv(clock=FakeClock(), **settings) as s:
                    await s.add_task("stuck", stubborn, run_once=True)
                    await s.add_task("slow", slow_to_stop, run_once=True)
                    for _ in range(2):
                        assert await anyio.to_thread.run_sync(entered.acquire, True, WAIT)
                    outer.start_soon(cancel_twice, host)
                    await anyio.sleep_forever()
    assert not stuck.is_set()  # shutdown ended while the stuck job still ran
    stuck.set()
    await join_pool_threads()
    jobs = await records(db)
    assert jobs["stuck"].error_message == ABANDONED_REASON
    # had the second cancellation cut the wait short, "slow" would be abandoned too
    assert jobs["slow"].status is JobStatus.CANCELLED
    assert jobs["slow"].error_message == SHUTDOWN_REASON


# -- shutdown with thousands of queued jobs ------------------------------------------------


async def test_shutdown_with_thousands_of_queued_jobs(tmp_path: Path, gates: Gates) -> None:
    count = 5000
    db = tmp_path / "q.db"
    called = 0

    def job() -> None:
        nonlocal called
        called += 1

    async with AsyncQuiv(clock=FakeClock(), db_path=db, pool_size=1) as s:
        rec = Recorder(s, [Event.JOB_STARTED, Event.JOB_CANCELLED])
        await s.add_task("blocker", lambda _stop_event: _stop_event.wait(WAIT * 2), run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        for i in range(count):
            await s.add_task(f"queued{i}", job, run_once=True)
        stats = await s.stats()
        assert stats.active_jobs == count + 1
        # (how long it takes is measured in bench/, W9)
        with anyio.fail_after(WAIT):
            await s.shutdown(timeout=WAIT)
    assert called == 0
    assert rec.count(Event.JOB_STARTED) == 1
    assert rec.count(Event.JOB_CANCELLED) == count + 1
    jobs = await records(db)
    assert len(jobs) == count + 1
    assert Counter(j.status for j in jobs.values()) == {JobStatus.CANCELLED: count + 1}
    assert all(j.error_message == SHUTDOWN_REASON for j in jobs.values())
    assert sum(j.started_at is None for j in jobs.values()) == count


# -- the sync face's loop thread dying -------------------------------------------------


def _crash(scheduler: Quiv, backend: str) -> None:
    """Make the scheduler's event loop die under it, as a fatal error would."""
    loop: Any = scheduler._runtime.loop
    native = loop._token.native_token
    if backend == "asyncio":
        native.call_soon_threadsafe(native.stop)  # run_until_complete() raises
    else:

        def boom() -> None:
            raise RuntimeError("injected crash")

        native.run_sync_soon(boom)  # crashes trio.run (TrioInternalError)


@pytest.mark.parametrize(
    "backend",
    [
        "asyncio",
        pytest.param(
            "trio", marks=pytest.mark.skipif(not HAS_TRIO, reason="trio is not installed")
        ),
    ],
)
def test_the_sync_faces_loop_dying(
    backend: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers blocked on it get SchedulerStoppedError, the running job sees its
    stop event, later calls raise SchedulerStoppedError, shutdown() returns at
    once, and no thread or temporary file is left."""
    entered = threading.Event()
    stopped = threading.Event()

    def handler(_stop_event: threading.Event) -> None:
        entered.set()
        if _stop_event.wait(WAIT):
            stopped.set()

    with no_leftovers(), caplog.at_level(logging.WARNING, logger="quiv"):
        scheduler = Quiv(backend=backend, shutdown_timeout=1)
        scheduler.start()
        task_id = scheduler.add_task("victim", handler, run_once=True)
        (job,) = scheduler.get_all_jobs(task_id=task_id)
        assert entered.wait(WAIT)
        outcome: list[BaseException | Job] = []

        def wait() -> None:
            try:
                outcome.append(scheduler.wait_for_job(job.id, timeout=WAIT * 2))
            except BaseException as exc:
                outcome.append(exc)

        # Crash once the waiter's call runs on the loop (a call spawned but not
        # yet started when trio crashes would never run: a RuntimeWarning). The
        # call's first step, which runs without a break, enters its scope.
        call_started = threading.Event()
        run_call = Call.run

        async def run_and_tell(call: Call[Any]) -> None:
            call_started.set()
            await run_call(call)

        monkeypatch.setattr(Call, "run", run_and_tell)
        waiter = threading.Thread(target=wait)
        waiter.start()
        assert call_started.wait(WAIT), "the waiter's call never started"
        _crash(scheduler, backend)
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert isinstance(outcome[0], SchedulerStoppedError), outcome
        assert stopped.wait(WAIT)  # the job was cancelled, not left running
        for thread in quiv_threads():
            thread.join(WAIT)
        assert not scheduler.is_running
        with pytest.raises(SchedulerStoppedError):
            scheduler.get_all_tasks()
        with pytest.raises(SchedulerStoppedError):
            scheduler.add_task("late", handler, run_once=True)
        # At once: with a timeout far beyond the bound here, a shutdown that
        # waited for anything would not return in time.
        stopper = threading.Thread(target=scheduler.shutdown, args=(WAIT * 6,), daemon=True)
        stopper.start()
        stopper.join(WAIT)
        assert not stopper.is_alive(), "shutdown() waited on a dead loop"
    assert any("stopped unexpectedly" in r.getMessage() for r in caplog.records)


def _open_sqlite_connections() -> set[int]:
    """Ids of the ``sqlite3.Connection`` objects alive and still open."""
    import gc
    import sqlite3

    gc.collect()
    alive = set()
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                obj.total_changes  # noqa: B018  # raises once the connection is closed
            except sqlite3.ProgrammingError:
                continue
            alive.add(id(obj))
    return alive


async def test_a_start_cancelled_at_any_point_leaves_no_database_open() -> None:
    """A cancel landing while the store's thread opens the file used to drop
    the open connection unclosed (Python 3.13 warns about it when collected)."""
    before = _open_sqlite_connections()
    for checkpoints in range(12):
        await _start_cancelled_after(checkpoints)
    assert _open_sqlite_connections() - before == set()
