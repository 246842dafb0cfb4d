"""Faults inside the engine: a failure never drops a schedule, a job's end or a waiter.

Each test injects one fault (a record write that raises, a listener that
raises, the main-loop bridge closing while events are emitted, an error
whose ``__str__`` raises) and then checks the invariants: the task keeps
running on schedule, ``wait_for_*`` returns promptly, the failure is logged,
and shutdown returns promptly. Handlers block on a semaphore the test
releases once it waits for their end, so no test depends on timing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import WAIT
from store_helpers import LogRecorder, recording_logger

from quiv import (
    AsyncQuiv,
    Event,
    Job,
    JobStatus,
    Quiv,
    SchedulerStoppedError,
    TaskStatus,
    call_on_main,
    run_on_main,
)
from quiv._core.records import JobRun, TaskState
from quiv._faces.loop_thread import LoopThread
from quiv.testing import FakeClock

pytestmark = pytest.mark.anyio


class Fault(Exception):
    """The injected failure."""


@asynccontextmanager
async def scheduler(clock: FakeClock) -> AsyncIterator[tuple[AsyncQuiv, LogRecorder]]:
    logger, log = recording_logger()
    async with AsyncQuiv(clock=clock, logger=logger, shutdown_timeout=WAIT) as s:
        yield s, log


def gated(gate: threading.Semaphore) -> Callable[[], None]:
    def handler() -> None:
        assert gate.acquire(timeout=WAIT), "the test never let this job end"

    return handler


async def end_of_next_job(
    s: AsyncQuiv, task_id: str, gate: threading.Semaphore, clock: FakeClock, advance: float = 0
) -> Job:
    """Wait for the next job of *task_id* to end, after moving the clock by *advance*."""
    ended: list[Job] = []

    async def wait(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()  # wait_for_task registers before it first yields
        ended.append(await s.wait_for_task(task_id, timeout=WAIT))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(wait)
            if advance:
                await clock.advance(advance)
            gate.release()
    return ended[0]


async def assert_runs_on_schedule(
    s: AsyncQuiv, task_id: str, gate: threading.Semaphore, clock: FakeClock, *, first: bool
) -> None:
    """The task's next runs happen, one per interval of 10 s."""
    if first:  # its first job, dispatched by add_task, has not ended yet
        assert (await end_of_next_job(s, task_id, gate, clock)).status is JobStatus.COMPLETED
    for _ in range(2):
        job = await end_of_next_job(s, task_id, gate, clock, advance=10)
        assert job.status is JobStatus.COMPLETED
    task = await s.get_task(task_id)
    assert task.status is TaskStatus.ACTIVE
    assert task.next_run_at is not None


async def shutdown_promptly(s: AsyncQuiv, gate: threading.Semaphore) -> None:
    gate.release(100)
    with anyio.fail_after(WAIT):
        await s.shutdown()
    assert not s.is_running


def errors(log: LogRecorder) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno >= logging.ERROR]


# -- a record write that raises -------------------------------------------------------


def _job_in(status: JobStatus) -> Callable[[Any], bool]:
    return lambda record: isinstance(record, JobRun) and record.status is status


WRITES: list[Any] = [
    pytest.param("put_job", _job_in(JobStatus.SCHEDULED), id="job-record-at-dispatch"),
    pytest.param(
        "put_task",
        lambda t: isinstance(t, TaskState) and t.run is not None,
        id="task-record-at-dispatch",
    ),
    pytest.param("put_job", _job_in(JobStatus.RUNNING), id="job-record-at-start"),
    pytest.param("put_job", lambda j: isinstance(j, Job), id="final-job-record"),
    pytest.param(
        "put_task",
        lambda t: isinstance(t, TaskState) and t.run is None and t.deadline is not None,
        id="task-record-after-the-job",
    ),
]


@pytest.mark.parametrize(("method", "when"), WRITES)
async def test_a_record_write_that_raises_loses_neither_the_job_nor_the_schedule(
    clock: FakeClock, method: str, when: Callable[[Any], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Semaphore(0)
    async with scheduler(clock) as (s, log):
        assert s._engine is not None
        store = s._engine.store
        real = getattr(store, method)
        raised: list[Any] = []

        def faulty(record: Any, **kwargs: Any) -> None:
            if not raised and when(record):
                raised.append(record)
                raise Fault("disk on fire")
            real(record, **kwargs)

        monkeypatch.setattr(store, method, faulty)
        task_id = await s.add_task("tick", gated(gate), interval=10)
        await assert_runs_on_schedule(s, task_id, gate, clock, first=True)
        assert len(raised) == 1
        assert any("failed" in m for m in errors(log))
        await shutdown_promptly(s, gate)


async def test_a_task_record_that_raises_on_add_still_adds_and_runs_the_task(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Semaphore(0)
    async with scheduler(clock) as (s, log):
        assert s._engine is not None
        store = s._engine.store
        real = store.put_task

        def faulty(task: Any, *, new: bool = False) -> None:
            if new:
                raise Fault("disk on fire")
            real(task, new=new)

        monkeypatch.setattr(store, "put_task", faulty)
        task_id = await s.add_task("tick", gated(gate), interval=10, delay=10)
        assert (await s.get_task(task_id)).status is TaskStatus.ACTIVE
        await assert_runs_on_schedule(s, task_id, gate, clock, first=False)
        assert any("task_added" in m for m in errors(log))
        await shutdown_promptly(s, gate)


# -- listeners and the main-loop bridge ----------------------------------------------------


async def test_listeners_that_raise_never_stop_the_schedule(clock: FakeClock) -> None:
    gate = threading.Semaphore(0)
    seen: list[Event] = []

    def broken(event: Event, *args: Any) -> None:
        seen.append(event)
        raise Fault("listener bug")

    async with scheduler(clock) as (s, log):
        for event in Event:
            s.add_listener(event, broken)
        task_id = await s.add_task("tick", gated(gate), interval=10)
        await assert_runs_on_schedule(s, task_id, gate, clock, first=True)
        with anyio.fail_after(WAIT):
            await log.wait_for(lambda r: "listener for 'job_completed'" in r.getMessage())
        await shutdown_promptly(s, gate)
    assert Event.TASK_ADDED in seen and Event.JOB_COMPLETED in seen


@pytest.mark.parametrize(
    "event", [Event.TASK_ADDED, Event.JOB_STARTED, Event.JOB_COMPLETED], ids=str
)
async def test_the_bridge_closing_while_events_are_emitted(
    clock: FakeClock, event: Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main loop's bridge closes (its loop ended, say) between the check
    that it is open and the hand-over of a listener call: events are dropped,
    the schedule and the waiters are not."""
    gate = threading.Semaphore(0)
    async with scheduler(clock) as (s, _):
        bridge = s._engine.bridge if s._engine is not None else None
        assert bridge is not None
        real = bridge.submit
        closed: list[Event] = []

        def closing(func: Any, args: tuple[Any, ...], kwargs: Any, *, what: str) -> None:
            if args[0] is event and not closed:
                closed.append(event)
                bridge.stop()  # as if from another thread, just now
            real(func, args, kwargs, what=what)

        monkeypatch.setattr(bridge, "submit", closing)
        for e in Event:
            s.add_listener(e, lambda *args: None)
        s.add_listener(event, lambda *args: None)  # two calls: the bridge closes between
        task_id = await s.add_task("tick", gated(gate), interval=10)
        await assert_runs_on_schedule(s, task_id, gate, clock, first=True)
        assert closed == [event]
        await shutdown_promptly(s, gate)


async def test_the_bridge_closing_during_the_shutdown_flush(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Semaphore(0)
    async with scheduler(clock) as (s, _):
        bridge = s._engine.bridge if s._engine is not None else None
        assert bridge is not None
        real = bridge.call

        def closing(*args: Any, **kwargs: Any) -> Any:
            bridge.stop()
            return real(*args, **kwargs)

        task_id = await s.add_task("tick", gated(gate), interval=10)
        await assert_runs_on_schedule(s, task_id, gate, clock, first=True)
        monkeypatch.setattr(bridge, "call", closing)
        await shutdown_promptly(s, gate)


# -- errors that cannot be described ---------------------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_an_error_whose_str_raises_fails_its_job_and_the_task_runs_on(
    clock: FakeClock,
) -> None:
    gate = threading.Semaphore(0)
    runs: list[int] = []

    def handler() -> None:
        assert gate.acquire(timeout=WAIT)
        runs.append(1)
        if len(runs) == 1:
            raise Unprintable()

    async with scheduler(clock) as (s, _):
        task_id = await s.add_task("tick", handler, interval=10)
        failed = await end_of_next_job(s, task_id, gate, clock)
        assert failed.status is JobStatus.FAILED
        assert failed.error_message is not None
        assert failed.error_message.startswith("Unprintable")
        for _ in range(2):
            job = await end_of_next_job(s, task_id, gate, clock, advance=10)
            assert job.status is JobStatus.COMPLETED
        await shutdown_promptly(s, gate)


# -- the sync face: an id is only returned for a task that exists -----------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_add_task_racing_a_shutdown_from_the_loop(backend: str) -> None:
    """A task handed to the loop just before the scheduler stops on its own (a
    callback awaiting ``async_quiv.shutdown()``) is added, and add_task after
    that raises, instead of returning the id of a task that never existed."""
    pytest.importorskip(backend)
    added: list[str] = []
    entered = threading.Event()
    release = threading.Event()
    scheduler = Quiv(backend=backend, shutdown_timeout=WAIT)
    scheduler.start()
    try:
        scheduler.add_listener(Event.TASK_ADDED, lambda event, task: added.append(task.id))

        async def block_then_stop() -> None:
            entered.set()
            assert release.wait(WAIT)  # blocks the scheduler's loop thread
            await scheduler.async_quiv.shutdown()

        stopping = scheduler.portal.start_task_soon(block_then_stop)
        assert entered.wait(WAIT)
        task_id = scheduler.add_task("later", print, delay=3600, run_once=True)
        release.set()
        stopping.result(WAIT)
        assert task_id in added
        with pytest.raises(SchedulerStoppedError):
            scheduler.add_task("too late", print, delay=3600, run_once=True)
    finally:
        release.set()
        scheduler.shutdown()


def test_a_posted_function_that_raises_never_stops_later_posts() -> None:
    """The loop thread runs each posted function; one that raises (a bug) must
    not leave the later ones queued forever (they are how Quiv.add_task adds)."""

    class Nothing:
        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *exc: object) -> None:
            return None

    loop = LoopThread("asyncio", None, name="quiv-test-loop")
    loop.start(Nothing())
    ran = threading.Event()

    def broken(_: object) -> None:
        raise Fault("a bug")

    quiet = logging.getLogger("asyncio")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # asyncio logs the error of the callback
    try:
        loop.post(broken, None)
        loop.post(lambda _: ran.set(), None)
        assert ran.wait(WAIT)
        ran.clear()
        loop.post(lambda _: ran.set(), None)
        assert ran.wait(WAIT)
    finally:
        quiet.setLevel(level)

        async def leave() -> None:
            loop.request_exit()

        loop.call(leave, final=True)
        assert loop.join(WAIT)


# -- cancellation in the bridge ------------------------------------------------------------


def _own_cancelled() -> BaseException:
    """The cancellation exception of the running loop, raised with nothing cancelled."""
    cls: Any = anyio.get_cancelled_exc_class()
    return cls._create() if hasattr(cls, "_create") else cls()


async def test_a_cancellation_exception_out_of_a_main_loop_target_is_its_failure() -> None:
    """Raised while the bridge is not being stopped (say, by awaiting a future
    that was cancelled), it is the target's failure: the call raises it, a
    fire-and-forget target's is logged, and the bridge goes on."""

    async def target() -> str:
        await anyio.lowlevel.checkpoint()
        raise _own_cancelled()

    async def fine() -> str:
        await anyio.lowlevel.checkpoint()
        return "fine"

    got: list[str] = []

    def handler() -> None:
        run_on_main(target)
        try:
            call_on_main(target)
        except BaseException as exc:  # the cancellation class of the main loop
            got.append(type(exc).__name__)
        got.append(call_on_main(fine))

    logger, log = recording_logger()
    async with AsyncQuiv(logger=logger) as s:
        task_id = await s.add_task("calls", handler, run_once=True)
        with anyio.fail_after(WAIT):
            job = await s.wait_for_task(task_id)
            await log.wait_for(lambda r: "run_on_main target" in r.getMessage())
        assert job.status is JobStatus.COMPLETED
        assert s.is_running
    assert got == [type(_own_cancelled()).__name__, "fine"]


async def test_stopping_the_bridge_cancels_its_targets_without_calling_it_a_failure() -> None:
    """The cancellation that the bridge's own stop delivers is not a failure of
    the listener or target it interrupts, and shutdown does not wait for them."""
    started = anyio.Event()
    cancelled: list[str] = []

    async def hangs(*args: Any) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("listener")
            raise

    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("target")
            raise

    logger, log = recording_logger()
    with anyio.fail_after(WAIT):
        async with AsyncQuiv(logger=logger, shutdown_timeout=0) as s:
            s.add_listener(Event.JOB_COMPLETED, hangs)
            await s.add_task("fire", lambda: run_on_main(forever), run_once=True)
            await started.wait()
    assert sorted(cancelled) == ["listener", "target"]
    assert not [m for m in errors(log) if "raised" in m]


async def test_a_host_cancellation_stops_main_loop_targets_only_at_shutdown() -> None:
    """A host cancelling the block does not reach the bridge's targets directly
    (they may be delivering the last events); the shutdown stops them."""
    started = anyio.Event()
    cancelled: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("target")
            raise

    logger, log = recording_logger()
    with anyio.fail_after(WAIT):
        with anyio.CancelScope() as host:
            async with AsyncQuiv(logger=logger, shutdown_timeout=0) as s:
                await s.add_task("fire", lambda: run_on_main(forever), run_once=True)
                await started.wait()
                host.cancel()
                await anyio.sleep_forever()
    assert host.cancelled_caught
    assert cancelled == ["target"]
    assert not [m for m in errors(log) if "raised" in m]
