"""Where and how handlers run: worker threads, worker loops, the pool bound, failures."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
from scheduler_helpers import WAIT, Gates, Recorder, handler_threads, settle

from quiv import AsyncQuiv, Event, JobStatus, TaskStatus
from quiv.testing import FakeClock


class Probe:
    """What a handler saw about where it ran."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.library: str | None = None
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.thread = threading.get_ident()
        try:
            self.library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            self.library = None
        self.args, self.kwargs = args, kwargs


async def run_once(scheduler: AsyncQuiv, func: Callable[..., Any], **options: Any) -> Any:
    task_id = await scheduler.add_task("probe", func, run_once=True, **options)
    return await scheduler.wait_for_task(task_id, timeout=WAIT)


async def test_sync_handlers_run_in_worker_threads(scheduler: AsyncQuiv) -> None:
    probe = Probe()
    job = await run_once(scheduler, probe.record, args=(1, 2), kwargs={"k": "v"})
    assert job.status is JobStatus.COMPLETED
    assert probe.thread is not None
    assert probe.thread != threading.get_ident()
    assert probe.library is None  # no event loop in a plain worker thread
    assert probe.args == (1, 2)
    assert probe.kwargs == {"k": "v"}


class AsyncCallable:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        await anyio.lowlevel.checkpoint()
        self.probe.record(*args, **kwargs)


class WithAsyncMethod:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def method(self, *args: Any, **kwargs: Any) -> None:
        await anyio.lowlevel.checkpoint()
        self.probe.record(*args, **kwargs)


def _async_variants(probe: Probe) -> dict[str, Callable[..., Any]]:
    async def coroutine_function(*args: Any, **kwargs: Any) -> None:
        await anyio.lowlevel.checkpoint()
        probe.record(*args, **kwargs)

    def sync_wrapper(*args: Any, **kwargs: Any) -> Awaitable[None]:
        return coroutine_function(*args, **kwargs)

    return {
        "coroutine function": coroutine_function,
        "async __call__": AsyncCallable(probe),
        "bound async method": WithAsyncMethod(probe).method,
        "partial": functools.partial(coroutine_function, 1),
        "partial of partial": functools.partial(functools.partial(coroutine_function), 1),
        "partial of async __call__": functools.partial(AsyncCallable(probe), 1),
        "sync wrapper returning a coroutine": sync_wrapper,
        "lambda returning a coroutine": lambda *a, **k: coroutine_function(*a, **k),
    }


VARIANTS = list(_async_variants(Probe()))


@pytest.mark.parametrize("variant", VARIANTS)
async def test_async_handlers_run_in_a_worker_loop_on_the_host_backend(
    scheduler: AsyncQuiv, anyio_backend_name: str, variant: str
) -> None:
    probe = Probe()
    func = _async_variants(probe)[variant]
    extra = () if "partial" in variant else (1,)
    job = await run_once(scheduler, func, args=(*extra, 2), kwargs={"k": "v"})
    assert job.status is JobStatus.COMPLETED, job.error_message
    assert probe.thread is not None
    assert probe.thread != threading.get_ident(), "ran on the main loop's thread"
    assert probe.library == anyio_backend_name
    assert probe.args == (1, 2)
    assert probe.kwargs == {"k": "v"}


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_worker_backend_can_be_configured(clock: FakeClock, worker_backend: str) -> None:
    probe = Probe()

    async def handler() -> None:
        await anyio.lowlevel.checkpoint()
        probe.record()

    async with AsyncQuiv(clock=clock, worker_backend=worker_backend) as s:
        assert s.config.worker_backend == worker_backend
        job = await run_once(s, handler)
    assert job.status is JobStatus.COMPLETED
    assert probe.library == worker_backend
    assert probe.thread != threading.get_ident()


async def test_an_async_handler_gets_a_fresh_loop_per_job(scheduler: AsyncQuiv) -> None:
    tokens: list[object] = []

    async def handler() -> None:
        tokens.append(anyio.lowlevel.current_token())
        await anyio.lowlevel.checkpoint()

    for _ in range(3):
        await run_once(scheduler, handler)
    assert len(tokens) == 3
    host = anyio.lowlevel.current_token().native_token
    assert all(token.native_token is not host for token in tokens)  # type: ignore[attr-defined]


async def test_an_async_handler_blocking_its_loop_does_not_block_the_main_loop(
    scheduler: AsyncQuiv, gates: Gates
) -> None:
    release = gates.new()
    rec = Recorder(scheduler)

    async def rude() -> None:
        release.wait(WAIT * 2)  # blocks its own (worker) loop, not ours

    task_id = await scheduler.add_task("rude", rude, run_once=True)
    await rec.wait_count(Event.JOB_STARTED, 1)
    other = await scheduler.add_task("other", lambda: None, run_once=True)
    job = await scheduler.wait_for_task(other, timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    release.set()
    assert (await scheduler.wait_for_task(task_id, timeout=WAIT)).status is JobStatus.COMPLETED


async def test_async_handler_child_tasks_run_in_the_worker_loop(scheduler: AsyncQuiv) -> None:
    threads: list[int] = []

    async def child() -> None:
        threads.append(threading.get_ident())

    async def parent() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(child)
        threads.append(threading.get_ident())

    job = await run_once(scheduler, parent)
    assert job.status is JobStatus.COMPLETED
    assert len(threads) == 4
    assert len(set(threads)) == 1
    assert threading.get_ident() not in threads


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_pool_size_bounds_concurrency(clock: FakeClock, gates: Gates, pool_size: int) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    barrier = threading.Barrier(pool_size)
    release = gates.new()

    def handler() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            barrier.wait(WAIT)  # only passes if pool_size handlers run at once
            release.wait(WAIT * 2)
        finally:
            with lock:
                running -= 1

    total = pool_size * 3  # whole waves, so each wave fills the barrier
    async with AsyncQuiv(clock=clock, pool_size=pool_size, shutdown_timeout=5) as s:
        rec = Recorder(s)
        for i in range(total):
            await s.add_task(f"t{i}", handler, run_once=True)
        await rec.wait_count(Event.JOB_STARTED, pool_size)
        await settle()  # the timer has dispatched every task
        stats = await s.stats()
        assert stats.active_jobs == total
        assert stats.pool_utilization == 1.0
        assert stats.tasks_by_status["running"] == total
        assert len(handler_threads()) == pool_size
        release.set()
        completed = await rec.wait_count(Event.JOB_COMPLETED, total)
    assert peak == pool_size
    assert all(job.status is JobStatus.COMPLETED for job in completed)
    assert not barrier.broken


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("boom"), "ValueError: boom"),
        (RuntimeError(), "RuntimeError"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (SystemExit(3), "SystemExit: 3"),
    ],
)
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_handler_exception_fails_the_job_and_nothing_else(
    scheduler: AsyncQuiv,
    caplog: pytest.LogCaptureFixture,
    error: BaseException,
    message: str,
    is_async: bool,
) -> None:
    def sync_handler() -> None:
        raise error

    async def async_handler() -> None:
        await anyio.lowlevel.checkpoint()
        raise error

    rec = Recorder(scheduler)
    task_id = await scheduler.add_task(
        "bad", async_handler if is_async else sync_handler, interval=10
    )
    [job] = await rec.wait_count(Event.JOB_FAILED, 1)
    assert job.status is JobStatus.FAILED
    assert job.error_message == message
    assert job.attempt == 1
    assert job.started_at is not None and job.ended_at is not None
    assert job.duration_seconds is not None and job.duration_seconds >= 0
    task = await scheduler.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    assert scheduler.is_running
    assert any(job.id in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    # the scheduler keeps working
    other = await scheduler.add_task("ok", lambda: None, run_once=True)
    assert (await scheduler.wait_for_task(other, timeout=WAIT)).status is JobStatus.COMPLETED


async def test_job_record_fields(scheduler: AsyncQuiv) -> None:
    rec = Recorder(scheduler)
    task_id = await scheduler.add_task("fields", lambda: 42, run_once=True)
    [started] = await rec.wait_count(Event.JOB_STARTED, 1)
    job = await scheduler.wait_for_job(started.id, timeout=WAIT)
    assert job.id == started.id
    assert job.task_id == task_id
    assert job.task_name == "fields"
    assert job.status is JobStatus.COMPLETED
    assert job.error_message is None
    assert job.attempt == 1
    assert job.scheduled_at is not None
    assert job.started_at is not None and job.ended_at is not None
    assert job.scheduled_at <= job.started_at <= job.ended_at
    for stamp in (job.scheduled_at, job.started_at, job.ended_at):
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert started.status is JobStatus.RUNNING
    assert started.ended_at is None
    assert await scheduler.get_job(job.id) == job


async def test_many_quick_jobs(scheduler: AsyncQuiv) -> None:
    count = 300
    done = threading.Semaphore(0)
    rec = Recorder(scheduler, [Event.JOB_COMPLETED])

    async def async_job() -> None:
        done.release()

    for i in range(count):
        func: Callable[[], Any] = async_job if i % 2 else done.release
        await scheduler.add_task(f"q{i}", func, run_once=True)
    await rec.wait_count(Event.JOB_COMPLETED, count, timeout=20)
    assert len(await scheduler.get_all_jobs(status="completed")) == count
    assert (await scheduler.stats()).job_history_count == count


_leaky: contextvars.ContextVar[str] = contextvars.ContextVar("leaky", default="unset")


@pytest.mark.parametrize("is_async", [False, True])
async def test_jobs_do_not_share_context_variables(clock: FakeClock, is_async: bool) -> None:
    """A context variable a handler sets is not seen by the next job on the same worker."""
    seen: list[str] = []

    def sync_handler(name: str) -> None:
        seen.append(_leaky.get())
        _leaky.set(name)

    async def async_handler(name: str) -> None:
        sync_handler(name)

    handler = async_handler if is_async else sync_handler
    async with AsyncQuiv(clock=clock, pool_size=1) as s:  # one worker runs them all
        rec = Recorder(s)
        for name in ("a", "b", "c"):
            await s.add_task(name, handler, run_once=True, delay=1, args=(name,))
        await clock.advance(1)
        await rec.wait_count(Event.JOB_COMPLETED, 3)
    assert seen == ["unset"] * 3
    assert _leaky.get() == "unset"


async def test_tasks_an_async_handler_leaves_behind_end_with_its_job(
    clock: FakeClock, gates: Gates, anyio_backend_name: str
) -> None:
    """asyncio lets a handler start a task nobody awaits; it must not outlive the job."""
    if anyio_backend_name != "asyncio":
        pytest.skip("trio has no unstructured tasks")
    import asyncio

    stray_ended = threading.Event()
    stray_alive_in_next_job: list[bool] = []
    release = gates.new()

    async def stray() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stray_ended.set()

    async def leaky() -> None:
        asyncio.get_running_loop().create_task(stray())
        await anyio.lowlevel.checkpoint()

    async def next_job() -> None:
        stray_alive_in_next_job.append(not stray_ended.is_set())
        release.wait(WAIT * 2)

    async with AsyncQuiv(clock=clock, pool_size=1, shutdown_timeout=5) as s:
        rec = Recorder(s)
        await s.add_task("leaky", leaky, run_once=True, delay=1)
        await s.add_task("next", next_job, run_once=True, delay=1)
        await clock.advance(1)
        await rec.wait_count(Event.JOB_STARTED, 2)
        release.set()
        await rec.wait_count(Event.JOB_COMPLETED, 2)
    assert stray_alive_in_next_job == [False]


async def test_sync_handlers_may_run_their_own_event_loop(clock: FakeClock) -> None:
    """A sync handler never runs inside an event loop, even between async jobs."""
    results: list[str] = []

    async def inner() -> str:
        await anyio.lowlevel.checkpoint()
        return sniffio.current_async_library()

    def sync_with_loop(backend: str) -> None:
        results.append(anyio.run(inner, backend=backend))

    async def async_job() -> None:
        await anyio.lowlevel.checkpoint()
        results.append("async")

    async with AsyncQuiv(clock=clock, pool_size=1) as s:  # one worker runs them in order
        rec = Recorder(s)
        plan: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (async_job, ()),
            (sync_with_loop, ("asyncio",)),
            (async_job, ()),
            (sync_with_loop, ("trio",)),
        ]
        for n, (func, args) in enumerate(plan):
            await s.add_task(f"j{n}", func, run_once=True, delay=1 + n / 1000, args=args)
        await clock.advance(2)
        jobs = await rec.wait_count(Event.JOB_COMPLETED, len(plan))
    assert all(job.status is JobStatus.COMPLETED for job in jobs)
    assert results == ["async", "asyncio", "async", "trio"]
