"""The bridge to the main loop: progress, run_on_main, call_on_main, listeners."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from quiv import (
    AsyncQuiv,
    Event,
    JobCancelledError,
    JobStatus,
    MainLoopUnavailableError,
    TaskStatus,
    call_on_main,
    call_on_main_async,
    current_job,
    run_on_main,
)
from quiv._mainloop.bridge import MainCall

pytestmark = pytest.mark.anyio

WAIT = 10


async def run_once(scheduler: AsyncQuiv, func: Callable[..., Any], **kwargs: Any) -> Any:
    task_id = await scheduler.add_task("job", func, run_once=True, **kwargs)
    with anyio.fail_after(WAIT):
        return await scheduler.wait_for_task(task_id)


class Recorder:
    """Collects calls on the main loop and wakes a waiter after *expected* of them."""

    def __init__(self, expected: int = 1) -> None:
        self.items: list[Any] = []
        self.threads: set[int] = set()
        self.expected = expected
        self.done = anyio.Event()

    def __call__(self, *args: Any, **payload: Any) -> None:
        self.threads.add(threading.get_ident())
        self.items.append(payload if payload else args)
        if len(self.items) >= self.expected:
            self.done.set()

    async def wait(self) -> list[Any]:
        with anyio.fail_after(WAIT):
            await self.done.wait()
        return self.items


# -- progress --------------------------------------------------------------------


async def test_progress_from_sync_handler_runs_on_main_loop_in_order() -> None:
    recorder = Recorder(expected=50)

    def handler(_progress_hook: Callable[..., None]) -> None:
        for i in range(50):
            _progress_hook(step=i)

    async with AsyncQuiv() as scheduler:
        job = await run_once(scheduler, handler, progress_callback=recorder)
        items = await recorder.wait()
    assert job.status is JobStatus.COMPLETED
    assert items == [{"step": i} for i in range(50)]
    assert recorder.threads == {threading.get_ident()}


async def test_async_progress_callback_from_async_handler() -> None:
    seen: list[int] = []
    threads: set[int] = set()
    done = anyio.Event()

    async def on_progress(step: int) -> None:
        threads.add(threading.get_ident())
        await anyio.lowlevel.checkpoint()
        seen.append(step)
        if step == 19:
            done.set()

    async def handler(_progress_hook: Callable[..., None]) -> None:
        for i in range(20):
            _progress_hook(step=i)
            await anyio.lowlevel.checkpoint()

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler, progress_callback=on_progress)
        with anyio.fail_after(WAIT):
            await done.wait()
    assert seen == list(range(20))
    assert threads == {threading.get_ident()}


async def test_progress_through_current_job_in_a_thread_started_with_the_job_context() -> None:
    recorder = Recorder(expected=2)

    def handler() -> None:
        job = current_job()
        assert job is not None
        job.progress(where="handler")
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(_report_from_thread,))
        thread.start()
        thread.join()

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler, progress_callback=recorder)
        items = await recorder.wait()
    assert items == [{"where": "handler"}, {"where": "thread"}]


def _report_from_thread() -> None:
    job = current_job()
    assert job is not None
    job.progress(where="thread")


async def test_failing_progress_callback_is_logged_and_the_job_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(expected=1)

    def on_progress(step: int) -> None:
        if step == 0:
            raise ValueError("callback broke")
        recorder(step=step)

    def handler(_progress_hook: Callable[..., None]) -> str:
        _progress_hook(step=0)
        _progress_hook(step=1)
        return "done"

    with caplog.at_level(logging.ERROR, logger="quiv"):
        async with AsyncQuiv() as scheduler:
            job = await run_once(scheduler, handler, progress_callback=on_progress)
            assert await recorder.wait() == [{"step": 1}]
    assert job.status is JobStatus.COMPLETED
    assert any("callback broke" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_progress_flood_is_delivered_whole_and_in_order_while_the_loop_stays_responsive() -> (
    None
):
    count = 20_000
    recorder = Recorder(expected=count)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    def handler(_progress_hook: Callable[..., None]) -> None:
        for i in range(count):
            _progress_hook(i=i)

    async with AsyncQuiv() as scheduler, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await run_once(scheduler, handler, progress_callback=recorder)
        items = await recorder.wait()
        tg.cancel_scope.cancel()
    assert [item["i"] for item in items] == list(range(count))
    # The drain yields every batch, so the ticker ran during the flood.
    assert ticks > count // 1000


# -- run_on_main ------------------------------------------------------------------


def _nested_step(target: Callable[..., Any], payload: str) -> None:
    run_on_main(target, payload)


async def test_run_on_main_from_nested_sync_code_reaches_the_main_loop() -> None:
    recorder = Recorder(expected=2)
    async_done = anyio.Event()
    async_threads: list[int] = []

    async def async_target(payload: str) -> None:
        async_threads.append(threading.get_ident())
        recorder(payload)
        async_done.set()

    def handler() -> None:
        _nested_step(recorder, "sync")
        _nested_step(async_target, "async")

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler)
        items = await recorder.wait()
        with anyio.fail_after(WAIT):
            await async_done.wait()
    assert sorted(items) == [("async",), ("sync",)]
    assert recorder.threads == {threading.get_ident()}
    assert async_threads == [threading.get_ident()]


async def test_run_on_main_from_async_handler() -> None:
    recorder = Recorder(expected=1)

    async def handler() -> None:
        await anyio.lowlevel.checkpoint()
        run_on_main(recorder, "from worker loop")

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler)
        assert await recorder.wait() == [("from worker loop",)]
    assert recorder.threads == {threading.get_ident()}


async def test_run_on_main_on_the_main_loop_runs_sync_inline_and_starts_async() -> None:
    calls: list[str] = []
    started = anyio.Event()

    async def async_target() -> None:
        calls.append("async")
        started.set()

    async with AsyncQuiv() as scheduler:
        run_on_main(calls.append, "sync")
        assert calls == ["sync"]  # inline, before run_on_main returned
        run_on_main(async_target)
        assert scheduler.pending_main_loop_work() == 1
        with anyio.fail_after(WAIT):
            await started.wait()
    assert calls == ["sync", "async"]


async def test_run_on_main_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    failed = anyio.Event()

    def target() -> None:
        failed.set()  # runs on the main loop, so an anyio.Event is fine
        raise RuntimeError("target broke")

    def handler() -> str:
        run_on_main(target)
        return "ok"

    with caplog.at_level(logging.ERROR, logger="quiv"):
        async with AsyncQuiv() as scheduler:
            job = await run_once(scheduler, handler)
            with anyio.fail_after(WAIT):
                await failed.wait()
    assert job.status is JobStatus.COMPLETED
    assert any("run_on_main target" in r.getMessage() for r in caplog.records)


async def test_run_on_main_after_an_async_handler_ran_first_still_targets_the_main_loop() -> None:
    """The first dispatch coming from a worker loop must not bind that loop as main."""
    recorder = Recorder(expected=2)

    async def handler(_progress_hook: Callable[..., None]) -> None:
        _progress_hook(n=1)

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler, progress_callback=recorder)

        def later() -> None:
            run_on_main(recorder, n=2)

        await run_once(scheduler, later)
        items = await recorder.wait()
    assert items == [{"n": 1}, {"n": 2}]
    assert recorder.threads == {threading.get_ident()}


def test_run_on_main_without_a_scheduler_raises() -> None:
    with pytest.raises(MainLoopUnavailableError, match="no running quiv scheduler"):
        run_on_main(print, "nothing")
    with pytest.raises(MainLoopUnavailableError):
        call_on_main(print, "nothing")


# -- call_on_main -----------------------------------------------------------------


async def test_call_on_main_returns_the_result_of_sync_and_async_targets() -> None:
    main_thread = threading.get_ident()

    async def async_target(x: int) -> tuple[int, bool]:
        await anyio.lowlevel.checkpoint()
        return x * 2, threading.get_ident() == main_thread

    def sync_target(x: int) -> tuple[int, bool]:
        return x + 1, threading.get_ident() == main_thread

    results: list[Any] = []

    def handler() -> None:
        results.append(call_on_main(async_target, 21))
        results.append(call_on_main(sync_target, x=1))

    async with AsyncQuiv() as scheduler:
        job = await run_once(scheduler, handler)
    assert job.status is JobStatus.COMPLETED
    assert results == [(42, True), (2, True)]


async def test_call_on_main_propagates_the_target_exception() -> None:
    def target() -> None:
        raise KeyError("missing")

    def handler() -> None:
        call_on_main(target)

    async with AsyncQuiv() as scheduler:
        job = await run_once(scheduler, handler)
    assert job.status is JobStatus.FAILED
    assert job.error_message is not None and "KeyError" in job.error_message


async def test_cancelling_the_job_cancels_the_call_on_main_target() -> None:
    target_started = anyio.Event()
    target_cancelled = anyio.Event()
    raised: list[BaseException] = []

    async def target() -> None:
        target_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            target_cancelled.set()

    def handler() -> None:
        try:
            call_on_main(target)
        except JobCancelledError as exc:
            raised.append(exc)
            raise

    async with AsyncQuiv() as scheduler:
        task_id = await scheduler.add_task("job", handler, run_once=True)
        with anyio.fail_after(WAIT):
            await target_started.wait()
        [job] = await scheduler.get_all_jobs(task_id=task_id)
        assert scheduler.cancel_job(job.id)
        with anyio.fail_after(WAIT):
            final = await scheduler.wait_for_job(job.id)
            await target_cancelled.wait()
    assert final.status is JobStatus.CANCELLED
    assert len(raised) == 1


async def test_call_on_main_from_an_already_cancelled_job_raises_without_running_the_target() -> (
    None
):
    ran: list[str] = []
    raised: list[BaseException] = []
    started = threading.Event()

    def handler(_stop_event: threading.Event) -> None:
        started.set()
        _stop_event.wait(WAIT)
        try:
            call_on_main(ran.append, "target")
        except JobCancelledError as exc:
            raised.append(exc)
            raise

    async with AsyncQuiv() as scheduler:
        task_id = await scheduler.add_task("job", handler, run_once=True)
        await anyio.to_thread.run_sync(started.wait, WAIT)
        [job] = await scheduler.get_all_jobs(task_id=task_id)
        assert scheduler.cancel_job(job.id)
        with anyio.fail_after(WAIT):
            final = await scheduler.wait_for_job(job.id)
        # Anything the job posted runs before a later call's target.
        assert await anyio.to_thread.run_sync(call_on_main, lambda: "later") == "later"
    assert final.status is JobStatus.CANCELLED
    assert len(raised) == 1
    assert ran == []


async def test_call_on_main_async_from_an_async_handler() -> None:
    async def target(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x + 1

    results: list[int] = []

    async def handler() -> None:
        results.append(await call_on_main_async(target, 1))
        results.append(await call_on_main_async(lambda: 5))

    async with AsyncQuiv() as scheduler:
        job = await run_once(scheduler, handler)
    assert job.status is JobStatus.COMPLETED
    assert results == [2, 5]


async def test_cancelling_an_async_job_waiting_in_call_on_main_async() -> None:
    target_started = anyio.Event()
    target_cancelled = anyio.Event()

    async def target() -> None:
        target_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            target_cancelled.set()

    async def handler() -> None:
        await call_on_main_async(target)

    async with AsyncQuiv() as scheduler:
        task_id = await scheduler.add_task("job", handler, run_once=True)
        with anyio.fail_after(WAIT):
            await target_started.wait()
        [job] = await scheduler.get_all_jobs(task_id=task_id)
        scheduler.cancel_job(job.id)
        with anyio.fail_after(WAIT):
            final = await scheduler.wait_for_job(job.id)
            await target_cancelled.wait()
    assert final.status is JobStatus.CANCELLED


def test_a_cancelled_main_call_raises_for_its_waiter_and_runs_its_callbacks() -> None:
    call = MainCall()
    fired: list[bool] = []
    call.add_done_callback(lambda: fired.append(call.done))
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            call.wait()
        except JobCancelledError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert call.cancel("stop")
    waiter.join(WAIT)
    assert not waiter.is_alive()
    assert [str(exc) for exc in outcome] == ["stop"]
    assert fired == [True]
    assert call.cancel_reason == "stop"


async def test_call_on_main_on_the_main_loop() -> None:
    async def coroutine_function() -> None:
        pass

    async with AsyncQuiv():
        assert call_on_main(lambda: 3) == 3
        with pytest.raises(MainLoopUnavailableError, match="await the target"):
            call_on_main(coroutine_function)
        assert await call_on_main_async(coroutine_function) is None


async def test_pending_main_loop_work_counts_unsettled_calls() -> None:
    release = anyio.Event()
    entered = anyio.Event()

    async def target() -> None:
        entered.set()
        await release.wait()

    def handler() -> None:
        run_on_main(target)

    async with AsyncQuiv() as scheduler:
        await run_once(scheduler, handler)
        with anyio.fail_after(WAIT):
            await entered.wait()
        assert scheduler.pending_main_loop_work() == 1
        release.set()
        await anyio.wait_all_tasks_blocked()
        assert scheduler.pending_main_loop_work() == 0


# -- listeners --------------------------------------------------------------------


async def test_job_events_carry_the_task_as_it_is_after_the_job() -> None:
    events: list[tuple[Any, ...]] = []
    done = anyio.Event()

    def listener(event: Event, task: Any, job: Any = None) -> None:
        events.append((event, task, job))
        if event is Event.JOB_COMPLETED:
            done.set()

    async with AsyncQuiv() as scheduler:
        for event in Event:
            scheduler.add_listener(event, listener)
        task_id = await scheduler.add_task("tick", lambda: None, interval=3600)
        with anyio.fail_after(WAIT):
            await done.wait()
    kinds = [e[0] for e in events]
    assert kinds[:3] == [Event.TASK_ADDED, Event.JOB_STARTED, Event.JOB_COMPLETED]
    added, started, completed = events[:3]
    assert added[2] is None and added[1].id == task_id
    assert started[1].status is TaskStatus.RUNNING
    assert completed[1].status is TaskStatus.ACTIVE
    assert completed[1].next_run_at is not None
    assert completed[2].status is JobStatus.COMPLETED


async def test_retry_emits_job_retrying_after_job_failed_with_the_failed_job() -> None:
    events: list[tuple[Event, Any]] = []
    done = anyio.Event()

    def listener(event: Event, task: Any, job: Any) -> None:
        events.append((event, job))
        if event is Event.JOB_RETRYING:
            done.set()

    def fail() -> None:
        raise ValueError("nope")

    async with AsyncQuiv() as scheduler:
        scheduler.add_listener(Event.JOB_FAILED, listener)
        scheduler.add_listener(Event.JOB_RETRYING, listener)
        await scheduler.add_task("f", fail, run_once=True, max_retries=1, retry_backoff=3600)
        with anyio.fail_after(WAIT):
            await done.wait()
    assert [e for e, _ in events] == [Event.JOB_FAILED, Event.JOB_RETRYING]
    assert events[0][1] == events[1][1]
    assert events[1][1].status is JobStatus.FAILED


async def test_failing_listener_is_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(expected=1)

    def broken(*args: Any) -> None:
        raise RuntimeError("listener broke")

    with caplog.at_level(logging.ERROR, logger="quiv"):
        async with AsyncQuiv() as scheduler:
            scheduler.add_listener(Event.JOB_COMPLETED, broken)
            scheduler.add_listener(Event.JOB_COMPLETED, recorder)
            job = await run_once(scheduler, lambda: None)
            await recorder.wait()
    assert job.status is JobStatus.COMPLETED
    assert any("listener for 'job_completed'" in r.getMessage() for r in caplog.records)


async def test_a_slow_listener_never_delays_a_handler() -> None:
    release = anyio.Event()

    async def slow_listener(*args: Any) -> None:
        await release.wait()

    async with AsyncQuiv() as scheduler:
        scheduler.add_listener(Event.JOB_STARTED, slow_listener)
        first = await run_once(scheduler, lambda: 1)
        second = await run_once(scheduler, lambda: 2)
        release.set()
    assert first.status is second.status is JobStatus.COMPLETED


async def test_listener_registration_is_validated() -> None:
    from quiv import ConfigurationError, HandlerRegistrationError

    async with AsyncQuiv() as scheduler:
        with pytest.raises(ConfigurationError, match="event must be an Event member"):
            scheduler.add_listener("job_completed", print)  # type: ignore[arg-type]
        with pytest.raises(HandlerRegistrationError, match="callback must be callable"):
            scheduler.add_listener(Event.JOB_COMPLETED, 42)  # type: ignore[arg-type]
        scheduler.remove_listener(Event.JOB_COMPLETED, print)  # unknown: ignored
