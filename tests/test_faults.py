"""Faults in user code and in the store: every job is recorded, dispatch goes on.

Handlers that raise anything (``BaseException`` subclasses and the backends'
cancellation exceptions included), sync functions that return awaitables,
handlers that never return and ignore their stop event, callbacks and
listeners that fail or hang, and a job store that fails to write or read.
Blocked handlers wait on ``threading.Event`` gates released at the end of
each test, so no thread outlives it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import WAIT, Gates, Recorder, join_pool_threads
from store_helpers import ProbeConnection, probe_factory, recording_logger

import quiv._faces.lifecycle
from quiv import AsyncQuiv, Event, JobStatus, QuivConfig, StoreError, TaskStatus
from quiv._core.outcomes import ABANDONED_REASON, SHUTDOWN_REASON
from quiv._store import SQLiteStore
from quiv._typing import Logger
from quiv.testing import FakeClock

HAS_TRIO = importlib.util.find_spec("trio") is not None


async def run_once(s: AsyncQuiv, func: Callable[..., Any], **kwargs: Any) -> str:
    """Add a run-once task; return its job's id (read from the store, no race)."""
    task_id = await s.add_task(getattr(func, "__name__", "job"), func, run_once=True, **kwargs)
    (job,) = await s.get_all_jobs(task_id=task_id)
    return job.id


async def finish(s: AsyncQuiv, job_id: str) -> Any:
    return await s.wait_for_job(job_id, timeout=WAIT)


# -- handlers that raise ------------------------------------------------------------


class Custom(BaseException):
    """A BaseException subclass of the user's own."""


def _asyncio_cancelled() -> BaseException:
    return asyncio.CancelledError()


def _trio_cancelled() -> BaseException:
    import trio

    return trio.Cancelled._create()  # no public constructor


def _own_cancelled() -> BaseException:
    """The cancellation exception of the loop running the handler."""
    cls: Any = anyio.get_cancelled_exc_class()
    return cls._create() if hasattr(cls, "_create") else cls()


RAISES: list[Any] = [
    pytest.param(lambda: ValueError("boom"), "ValueError: boom", id="ValueError"),
    pytest.param(KeyboardInterrupt, "KeyboardInterrupt", id="KeyboardInterrupt"),
    pytest.param(lambda: SystemExit(3), "SystemExit: 3", id="SystemExit"),
    pytest.param(GeneratorExit, "GeneratorExit", id="GeneratorExit"),
    pytest.param(lambda: Custom("mine"), "Custom: mine", id="BaseException-subclass"),
    pytest.param(_asyncio_cancelled, "CancelledError", id="asyncio.CancelledError"),
    pytest.param(
        _trio_cancelled,
        "Cancelled",
        id="trio.Cancelled",
        marks=pytest.mark.skipif(not HAS_TRIO, reason="trio is not installed"),
    ),
]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("make", "message"), RAISES)
async def test_a_handler_raising_anything_fails_its_job_and_the_pool_goes_on(
    make: Callable[[], BaseException], message: str, is_async: bool
) -> None:
    calls: list[str] = []

    def sync_handler() -> None:
        calls.append("raised")
        raise make()

    async def async_handler() -> None:
        await anyio.lowlevel.checkpoint()
        calls.append("raised")
        raise make()

    async with AsyncQuiv(clock=FakeClock(), pool_size=1) as s:
        rec = Recorder(s)
        failing = await run_once(s, async_handler if is_async else sync_handler)
        after = await run_once(s, lambda: calls.append("after"))
        job = await finish(s, failing)
        assert job.status is JobStatus.FAILED
        assert job.error_message.startswith(message)
        # the single pool slot survived and ran the next job
        assert (await finish(s, after)).status is JobStatus.COMPLETED
        assert calls == ["raised", "after"]
        await rec.wait_count(Event.JOB_COMPLETED, 1)
        assert [j.id for j in rec.jobs(Event.JOB_FAILED)] == [failing]
        assert rec.count(Event.JOB_CANCELLED) == 0
        assert s.is_running


async def test_an_async_handler_raising_its_own_loops_cancellation_fails_its_job() -> None:
    """Not a cancellation quiv asked for: the job failed, and nothing else is hurt."""

    async def handler() -> None:
        await anyio.lowlevel.checkpoint()
        raise _own_cancelled()

    async with AsyncQuiv(clock=FakeClock(), pool_size=1) as s:
        jobs = [await run_once(s, handler) for _ in range(3)]
        ok = await run_once(s, lambda: None)
        for job_id in jobs:
            job = await finish(s, job_id)
            assert job.status is JobStatus.FAILED
            assert "Cancel" in job.error_message
        assert (await finish(s, ok)).status is JobStatus.COMPLETED


async def test_a_recurring_handler_that_keeps_raising_keeps_being_scheduled(
    clock: FakeClock,
) -> None:
    async with AsyncQuiv(clock=clock, pool_size=1) as s:
        rec = Recorder(s)

        def broken() -> None:
            raise KeyboardInterrupt

        task_id = await s.add_task("broken", broken, interval=10)
        for n in range(1, 4):
            await rec.wait_count(Event.JOB_FAILED, n)
            task = await s.get_task(task_id)
            assert task.status is TaskStatus.ACTIVE
            assert task.next_run_at is not None
            await clock.advance(10)
        assert all(j.error_message == "KeyboardInterrupt" for j in rec.jobs(Event.JOB_FAILED))


# -- sync functions returning awaitables ---------------------------------------------


class Awaitable42:
    """A plain awaitable (not a coroutine)."""

    def __await__(self) -> Generator[Any, None, int]:
        yield from anyio.lowlevel.checkpoint().__await__()
        return 42


async def test_sync_functions_returning_awaitables_have_them_awaited_in_a_worker_loop() -> None:
    seen: list[Any] = []

    async def work(tag: str) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((tag, threading.current_thread() is not threading.main_thread()))

    async def fails() -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("inside the awaitable")

    async with AsyncQuiv(clock=FakeClock()) as s:
        coroutine = await run_once(s, lambda: work("coroutine"))
        plain = await run_once(s, lambda: Awaitable42())
        failing = await run_once(s, lambda: fails())
        assert (await finish(s, coroutine)).status is JobStatus.COMPLETED
        assert (await finish(s, plain)).status is JobStatus.COMPLETED
        job = await finish(s, failing)
        assert job.status is JobStatus.FAILED
        assert job.error_message == "ValueError: inside the awaitable"
    assert seen == [("coroutine", True)]


async def test_an_awaitable_returned_by_a_sync_function_is_cancelled_at_its_next_await() -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    async with AsyncQuiv(clock=FakeClock()) as s:
        job_id = await run_once(s, lambda: forever())
        assert await anyio.to_thread.run_sync(started.wait, WAIT)
        assert s.cancel_job(job_id)
        job = await finish(s, job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == "cancelled by cancel_job()"


@pytest.mark.skipif(not HAS_TRIO, reason="trio is not installed")
@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_an_awaitable_of_the_other_backend_fails_its_job(worker_backend: str) -> None:
    """asyncio.sleep() on a trio worker loop (or the reverse) is the handler's bug."""

    async def trio_sleep() -> None:
        import trio

        await trio.sleep(0.001)

    wrong = trio_sleep if worker_backend == "asyncio" else (lambda: asyncio.sleep(0.001))
    async with AsyncQuiv(clock=FakeClock(), worker_backend=worker_backend) as s:
        job_id = await run_once(s, lambda: wrong())
        ok = await run_once(s, lambda: None)
        job = await finish(s, job_id)
        assert job.status is JobStatus.FAILED, job
        assert (await finish(s, ok)).status is JobStatus.COMPLETED


# -- handlers that never return ------------------------------------------------------


async def _ignore_cancellation(gate: threading.Event) -> None:
    """An async handler that shields itself from cancellation until *gate* opens."""
    while not gate.is_set():
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.005)


async def test_stuck_handlers_hold_only_their_own_slots_and_shutdown_abandons_them(
    caplog: pytest.LogCaptureFixture, gates: Gates
) -> None:
    """Handlers ignoring their stop event: cancel and timeout cannot end them; the
    other slots keep working; shutdown(timeout) returns while they still run,
    records them "abandoned at shutdown" and names each in one warning."""
    gate = gates.new()
    entered = threading.Semaphore(0)

    def stuck_sync() -> None:  # never looks at its stop event
        entered.release()
        gate.wait(WAIT * 4)

    async def stuck_async_blocking() -> None:  # blocks its own loop: no await to cancel
        entered.release()
        gate.wait(WAIT * 4)

    async def stuck_async_shielded() -> None:
        entered.release()
        await _ignore_cancellation(gate)

    clock = FakeClock()
    stuck = {"stuck_sync": stuck_sync, "stuck_async_blocking": stuck_async_blocking}
    stuck["stuck_async_shielded"] = stuck_async_shielded
    async with AsyncQuiv(clock=clock, pool_size=len(stuck) + 1) as s:
        rec = Recorder(s)
        ids = {}
        for name, func in stuck.items():
            timeout = 5 if name == "stuck_async_shielded" else None
            task_id = await s.add_task(name, func, run_once=True, timeout=timeout)
            (job,) = await s.get_all_jobs(task_id=task_id)
            ids[name] = job.id
        for _ in stuck:
            assert await anyio.to_thread.run_sync(entered.acquire, True, WAIT)
        # cancel requests (and a timeout) reach them, but cannot end them
        assert s.cancel_job(ids["stuck_sync"])
        assert s.cancel_job(ids["stuck_async_blocking"])
        await clock.advance(5)
        # the last slot keeps the scheduler working
        done = [await run_once(s, lambda i=i: i) for i in range(20)]
        for job_id in done:
            assert (await finish(s, job_id)).status is JobStatus.COMPLETED
        for job_id in ids.values():
            assert (await s.get_job(job_id)).status is JobStatus.RUNNING
        assert (await s.stats()).active_jobs == len(stuck)
        # fill the last slot too: the next job waits for a slot that never frees
        task_id = await s.add_task("stuck_last", stuck_sync, run_once=True)
        (job,) = await s.get_all_jobs(task_id=task_id)
        ids["stuck_last"] = job.id
        assert await anyio.to_thread.run_sync(entered.acquire, True, WAIT)
        queued = await run_once(s, lambda: None)
        # Returning at all proves the bound: the handlers hold out for WAIT * 4.
        # How close to its timeout it returns is measured in bench/ (W9).
        with caplog.at_level(logging.WARNING, logger="quiv"), anyio.fail_after(WAIT):
            await s.shutdown(timeout=0.3)
        ended = {job.id: job for job in rec.jobs(Event.JOB_CANCELLED)}
    for job_id in ids.values():
        assert ended[job_id].error_message == ABANDONED_REASON
    assert ended[queued].error_message == SHUTDOWN_REASON
    assert ended[queued].started_at is None  # its handler was never called
    warnings = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert len(warnings) == 1
    for name, job_id in ids.items():
        assert f"{name!r} (job {job_id})" in warnings[0]
    gate.set()
    await join_pool_threads()


# -- callbacks and listeners that fail or hang -----------------------------------------


def _raise_cancelled() -> None:
    """A cancellation exception that no cancel scope asked for (e.g. from a
    cancelled future the callback awaited), of the running loop's kind."""
    raise _own_cancelled()


async def test_callbacks_raising_cancellation_exceptions_are_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A progress callback or listener that raises the loop's cancellation
    exception (without being cancelled) must neither stop the deliveries nor
    cancel the host."""
    delivered: list[Any] = []
    done = anyio.Event()

    def on_progress(step: int) -> None:
        if step == 1:
            _raise_cancelled()
        delivered.append(step)

    async def async_listener(event: Event, task: Any, job: Any) -> None:
        await anyio.lowlevel.checkpoint()
        _raise_cancelled()

    def sync_listener(event: Event, task: Any, job: Any) -> None:
        _raise_cancelled()

    def last(event: Event, task: Any, job: Any) -> None:
        delivered.append(event)
        if len([d for d in delivered if d is Event.JOB_COMPLETED]) == 2:
            done.set()

    def handler(_progress_hook: Callable[..., None]) -> None:
        for step in range(3):
            _progress_hook(step=step)

    with caplog.at_level(logging.ERROR, logger="quiv"):
        with anyio.fail_after(WAIT):
            async with AsyncQuiv(clock=FakeClock()) as s:
                s.add_listener(Event.JOB_STARTED, async_listener)
                s.add_listener(Event.JOB_COMPLETED, sync_listener)
                s.add_listener(Event.JOB_COMPLETED, last)
                first = await run_once(s, handler, progress_callback=on_progress)
                await finish(s, first)
                second = await run_once(s, handler, progress_callback=on_progress)
                await finish(s, second)
                await done.wait()
                assert s.is_running
    assert delivered == [0, 2, Event.JOB_COMPLETED, 0, 2, Event.JOB_COMPLETED]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(failures) == 6  # 2 jobs x (progress, async listener, sync listener)


async def test_a_hung_listener_delays_later_events_but_never_jobs_or_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events are delivered in order, so a listener that never returns holds the
    ones after it; handlers keep running, and shutdown(timeout) stays bounded."""
    hung = anyio.Event()
    completed: list[str] = []

    async def hangs(*args: Any) -> None:
        hung.set()
        await anyio.sleep_forever()

    async with AsyncQuiv(clock=FakeClock()) as s:
        s.add_listener(Event.JOB_STARTED, hangs)
        s.add_listener(Event.JOB_COMPLETED, lambda e, t, j: completed.append(j.id))
        jobs = [await run_once(s, lambda i=i: i) for i in range(5)]
        for job_id in jobs:
            assert (await finish(s, job_id)).status is JobStatus.COMPLETED
        with anyio.fail_after(WAIT):
            await hung.wait()
        assert completed == []  # held behind the hung listener
        assert s.pending_main_loop_work() > 0
        # The listener never returns: returning at all proves the bound (its
        # duration is measured in bench/, W9).
        with caplog.at_level(logging.WARNING, logger="quiv"), anyio.fail_after(WAIT):
            await s.shutdown(timeout=0.2)
    assert any("still pending at shutdown" in r.getMessage() for r in caplog.records)


async def test_a_slow_progress_callback_never_slows_the_handler() -> None:
    release = anyio.Event()
    all_delivered = anyio.Event()
    got: list[int] = []

    async def slow(step: int) -> None:
        await release.wait()
        got.append(step)
        if len(got) == 1000:
            all_delivered.set()

    def handler(_progress_hook: Callable[..., None]) -> None:
        for step in range(1000):
            _progress_hook(step=step)

    async with AsyncQuiv(clock=FakeClock()) as s:
        job = await finish(s, await run_once(s, handler, progress_callback=slow))
        assert job.status is JobStatus.COMPLETED
        assert got == []
        release.set()
        with anyio.fail_after(WAIT):
            await all_delivered.wait()
    assert got == list(range(1000))


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit], ids=lambda e: e.__name__)
async def test_a_listener_raising_keyboard_interrupt_ends_the_block_cleanly(
    tmp_path: Path, fatal: type[BaseException], gates: Gates
) -> None:
    """Like any main-loop code, a listener may end the program; quiv then stops
    as for any error in the block: jobs recorded, no thread left."""
    gate = gates.new()
    db = tmp_path / "q.db"

    def boom(*args: Any) -> None:
        raise fatal()

    def polite(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT)  # returns when shutdown cancels it

    with pytest.raises(BaseException) as info:  # which one: checked below
        async with AsyncQuiv(clock=FakeClock(), db_path=db, shutdown_timeout=WAIT) as s:
            running = await run_once(s, polite)
            s.add_listener(Event.TASK_ADDED, boom)
            await s.add_task("trigger", lambda: gate.wait(WAIT), interval=60, delay=60)
            await anyio.sleep_forever()
    assert _contains(info.value, fatal)
    await join_pool_threads()
    async with AsyncQuiv(db_path=db) as s:
        job = await s.get_job(running)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == SHUTDOWN_REASON


def _contains(error: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(error, kind):
        return True
    return any(_contains(e, kind) for e in getattr(error, "exceptions", ()))


# -- the job store failing --------------------------------------------------------------


@asynccontextmanager
async def probed(**settings: Any) -> AsyncIterator[tuple[AsyncQuiv, ProbeConnection, Any]]:
    """An AsyncQuiv whose SQLite connection can be told to fail."""
    logger, recorder = recording_logger()
    stores: list[SQLiteStore] = []

    def make_store(config: QuivConfig, _logger: Logger) -> SQLiteStore:
        store = SQLiteStore(
            config.db_path,
            history_retention_seconds=config.history_retention_seconds,
            logger=logger,
            connection_factory=probe_factory,
        )
        stores.append(store)
        return store

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quiv._faces.lifecycle, "_make_store", make_store)
        async with AsyncQuiv(clock=FakeClock(), logger=logger, **settings) as s:
            connection = stores[0].connection
            assert isinstance(connection, ProbeConnection)
            yield s, connection, recorder


async def test_write_failures_lose_no_record_and_do_not_stop_dispatch() -> None:
    async with probed() as (s, conn, log):
        rec = Recorder(s)
        conn.fail_writes = 4
        # reads fail while writes do (they would miss rows): follow the events
        for i in range(30):
            await s.add_task(f"ok{i}", lambda: None, run_once=True)
        await s.add_task("failing", lambda: 1 / 0, run_once=True)
        ends = [
            *await rec.wait_count(Event.JOB_COMPLETED, 30),
            *await rec.wait_count(Event.JOB_FAILED, 1),
        ]
        with anyio.fail_after(WAIT):
            await log.wait_for(lambda r: "works again" in r.getMessage())
        assert any(r.levelno == logging.ERROR for r in log.records)
        records = {job.id: job for job in await s.get_all_jobs()}
        assert len(records) == 31
        for end in ends:
            assert records[end.id] == end
        assert (await s.stats()).job_history_count == 31


async def test_read_failures_are_store_errors_and_the_scheduler_goes_on() -> None:
    async with probed() as (s, conn, _):
        job_id = await run_once(s, lambda: None)
        await finish(s, job_id)
        for read in (s.get_job(job_id), s.get_all_jobs(), s.stats()):
            conn.fail_reads = 1
            with pytest.raises(StoreError) as info:
                await read
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert (await s.get_job(job_id)).status is JobStatus.COMPLETED
        assert (await finish(s, await run_once(s, lambda: None))).status is JobStatus.COMPLETED


async def test_a_store_failing_for_good_blocks_neither_jobs_nor_shutdown() -> None:
    async with probed(shutdown_timeout=1) as (s, conn, log):
        rec = Recorder(s)
        conn.fail_writes = 10**9
        for _ in range(10):
            await s.add_task("ok", lambda: None, run_once=True)
        jobs = await rec.wait_count(Event.JOB_COMPLETED, 10)
        # reads cannot answer without the unwritten rows: they say so, never hang
        for read in (s.get_all_jobs(), s.get_job(jobs[0].id), s.wait_for_job(jobs[0].id)):
            with anyio.fail_after(WAIT), pytest.raises(StoreError):
                await read
        assert s.is_running
        with anyio.fail_after(WAIT):  # a store that never writes must not hold it
            await s.shutdown()
    assert any("unwritten" in m for m in log.messages(logging.ERROR))


async def test_a_store_that_cannot_open_fails_the_start_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    threads = set(threading.enumerate())
    s = AsyncQuiv(db_path=tmp_path / "missing" / "q.db")
    with pytest.raises(StoreError):
        async with s:
            pytest.fail("the block must not run")
    assert not s.is_running
    assert not (tmp_path / "missing").exists()
    new = [t for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert all(t.name.startswith(("AnyIO worker", "Trio thread")) for t in new)
