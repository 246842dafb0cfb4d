"""The sync face, Quiv: without any event loop, from threads, inside asyncio and trio loops."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio
from sync_helpers import WAIT, JobEnds, no_leftovers, quiv_threads

from quiv import (
    CancelReason,
    ConfigurationError,
    Event,
    Job,
    JobStatus,
    Quiv,
    QuivConfig,
    QuivError,
    SchedulerStoppedError,
    StoreError,
    Task,
    TaskNotFoundError,
    TaskStatus,
    run_on_main,
)

needs_trio = pytest.mark.skipif(
    importlib.util.find_spec("trio") is None, reason="trio is not installed"
)


def count_to(n: int, _progress_hook: Callable[..., None]) -> int:
    for i in range(1, n + 1):
        _progress_hook(i=i)
    return n


def wait_for_stop(_stop_event: threading.Event) -> None:
    _stop_event.wait(WAIT)


# -- without any event loop ----------------------------------------------------------


def test_runs_tasks_without_any_event_loop() -> None:
    seen: list[tuple[int, str]] = []

    def on_progress(**payload: Any) -> None:
        seen.append((payload["i"], threading.current_thread().name))

    with no_leftovers():
        with Quiv() as scheduler:
            ends = JobEnds(scheduler)
            task_id = scheduler.add_task(
                "count", count_to, run_once=True, args=(20,), progress_callback=on_progress
            )
            job = ends.wait(task_id)
        # shutdown() from a plain thread waits for the queued callbacks
    assert job.status is JobStatus.COMPLETED
    assert [i for i, _ in seen] == list(range(1, 21))
    # no host loop: callbacks run on the scheduler's own loop
    assert all(name.startswith("quiv-") for _, name in seen)


def test_every_method_works_through_the_sync_face() -> None:
    with no_leftovers(), Quiv(pool_size=2, timezone="Europe/Paris") as scheduler:
        assert scheduler.is_running
        assert scheduler.config.pool_size == 2
        assert str(scheduler.timezone) == "Europe/Paris"
        assert scheduler.portal.call(sniffio.current_async_library) == "asyncio"

        starts = JobEnds(scheduler, events=(Event.JOB_STARTED,))
        task_id = scheduler.add_task("wait", wait_for_stop, interval=3600)
        assert isinstance(scheduler.get_task(task_id), Task)
        job = starts.wait(task_id)
        assert scheduler.cancel_job(job.id) is True
        assert scheduler.wait_for_job(job.id, timeout=WAIT).status is JobStatus.CANCELLED
        assert scheduler.get_job(job.id).status is JobStatus.CANCELLED
        assert scheduler.cancel_job(job.id) is False

        updated = scheduler.update_task(task_id, task_name="renamed", interval=7200)
        assert (updated.task_name, updated.interval_seconds) == ("renamed", 7200)
        scheduler.pause_task(task_id)
        assert scheduler.get_task(task_id).status is TaskStatus.PAUSED
        assert [t.id for t in scheduler.get_all_tasks(status="paused")] == [task_id]
        scheduler.resume_task(task_id, delay=3600)
        assert scheduler.get_task(task_id).status is TaskStatus.ACTIVE
        scheduler.run_task_immediately(task_id)
        second = starts.wait(task_id, count=2)
        assert scheduler.get_all_jobs(status="running", task_id=task_id) == [
            scheduler.get_job(second.id)
        ]
        scheduler.remove_task(task_id)
        assert scheduler.wait_for_job(second.id, timeout=WAIT).status is JobStatus.CANCELLED
        with pytest.raises(TaskNotFoundError):
            scheduler.get_task(task_id)

        stats = scheduler.stats()
        assert stats.pool_size == 2 and stats.loop_alive
        assert scheduler.pending_main_loop_work() >= 0
        calls: list[Event] = []
        scheduler.add_listener(Event.TASK_ADDED, lambda event, task: calls.append(event))
        scheduler.remove_listener(Event.TASK_ADDED, calls.append)  # unknown: ignored


def test_cancel_job_from_a_thread_stops_the_handler_before_the_loop_answers() -> None:
    started, seen = threading.Event(), threading.Event()

    def job(_stop_event: threading.Event) -> None:
        started.set()
        if _stop_event.wait(WAIT):
            seen.set()

    with Quiv() as scheduler:
        ends = JobEnds(scheduler)
        task_id = scheduler.add_task("job", job, run_once=True)
        job_id = scheduler.get_task(task_id).next_job_id
        assert job_id is not None and started.wait(WAIT)
        # the scheduler's loop is busy (blocked here) when the cancel comes
        busy, release = threading.Event(), threading.Event()

        def block_the_loop() -> None:
            busy.set()
            release.wait(WAIT)

        blocker = threading.Thread(target=scheduler.portal.call, args=(block_the_loop,))
        blocker.start()
        assert busy.wait(WAIT)
        answers: list[bool] = []
        canceller = threading.Thread(target=lambda: answers.append(scheduler.cancel_job(job_id)))
        canceller.start()
        try:
            # bounded by WAIT (the loop is released after it): the stop came from this thread
            assert seen.wait(WAIT), "the handler saw no stop while the loop was busy"
        finally:
            release.set()
            blocker.join(WAIT)
            canceller.join(WAIT)
        assert answers == [True]
        ended = ends.wait(task_id)
        assert (ended.status, ended.cancel_reason) == (JobStatus.CANCELLED, CancelReason.CANCELLED)
        assert ended.error_message == "cancelled by cancel_job()"
        assert scheduler.cancel_job(job_id) is False  # over


def test_errors_keep_their_type() -> None:
    with no_leftovers(), Quiv() as scheduler:
        with pytest.raises(TaskNotFoundError):
            scheduler.get_task("no-such-task")
        with pytest.raises(ConfigurationError, match="interval"):
            scheduler.add_task("bad", count_to, interval="5")  # type: ignore[arg-type]
        task_id = scheduler.add_task("wait", wait_for_stop, run_once=True)
        with pytest.raises(TimeoutError):
            scheduler.wait_for_task(task_id, timeout=0.01)
        assert scheduler.get_all_tasks(include_run_once=True)[0].id == task_id


def test_methods_can_be_called_from_many_threads_at_once() -> None:
    results: list[Job] = []
    errors: list[BaseException] = []
    ended = {f"t{n}": threading.Event() for n in range(16)}
    job_ids: dict[str, str] = {}

    def on_end(event: Event, task: Task, job: Job) -> None:
        job_ids[task.task_name] = job.id
        ended[task.task_name].set()

    def client(scheduler: Quiv, n: int) -> None:
        try:
            task_id = scheduler.add_task(f"t{n}", count_to, run_once=True, args=(n,))
            assert task_id in {t.id for t in scheduler.get_all_tasks(include_run_once=True)} | {
                j.task_id for j in scheduler.get_all_jobs()
            }
            assert ended[f"t{n}"].wait(WAIT)
            results.append(scheduler.wait_for_job(job_ids[f"t{n}"], timeout=WAIT))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with no_leftovers(), Quiv(pool_size=4) as scheduler:
        scheduler.add_listener(Event.JOB_COMPLETED, on_end)
        threads = [threading.Thread(target=client, args=(scheduler, n)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert not errors
    assert len(results) == 16
    assert {job.status for job in results} == {JobStatus.COMPLETED}


def test_backend_trio_runs_the_scheduler_on_trio() -> None:
    pytest.importorskip("trio")

    async def report(_job_id: str) -> str:
        return sniffio.current_async_library()

    with no_leftovers(), Quiv(backend="trio") as scheduler:
        assert scheduler.portal.call(sniffio.current_async_library) == "trio"
        ends = JobEnds(scheduler)
        task_id = scheduler.add_task("async", report, run_once=True)
        assert ends.wait(task_id).status is JobStatus.COMPLETED


# -- lifecycle -------------------------------------------------------------------------


def test_start_and_shutdown_twice_are_no_ops() -> None:
    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        (thread,) = quiv_threads()
        scheduler.startup()  # the alias
        assert quiv_threads() == [thread]
        assert scheduler.is_running
        scheduler.shutdown()
        assert not scheduler.is_running
        scheduler.stop()  # the alias
        scheduler.shutdown(timeout=1)


_TASK_METHODS = [
    ("add_task", ("t", count_to, 1)),
    ("update_task", ("id",)),
    ("remove_task", ("id",)),
    ("pause_task", ("id",)),
    ("resume_task", ("id",)),
    ("run_task_immediately", ("id",)),
    ("get_task", ("id",)),
    ("get_all_tasks", ()),
]
_JOB_METHODS = [
    ("cancel_job", ("id",)),
    ("get_job", ("id",)),
    ("get_all_jobs", ()),
    ("wait_for_job", ("id",)),
    ("wait_for_task", ("id",)),
    ("stats", ()),
]


@pytest.mark.parametrize(("method", "args"), _JOB_METHODS)
def test_job_methods_before_start_raise(method: str, args: tuple[Any, ...]) -> None:
    scheduler = Quiv()
    with pytest.raises(SchedulerStoppedError, match="start"):
        getattr(scheduler, method)(*args)


@pytest.mark.parametrize(("method", "args"), _TASK_METHODS + _JOB_METHODS)
def test_every_method_raises_after_shutdown(method: str, args: tuple[Any, ...]) -> None:
    scheduler = Quiv()
    with no_leftovers():
        scheduler.start()
        scheduler.shutdown()
    with pytest.raises(SchedulerStoppedError, match="shut down"):
        getattr(scheduler, method)(*args)


def test_tasks_declared_before_start_run_once_it_starts() -> None:
    """Apps declare their tasks at import time, before the lifespan starts the scheduler."""
    scheduler = Quiv()
    ran = threading.Event()
    kept = scheduler.add_task("kept", lambda: ran.set(), run_once=True)
    paused = scheduler.add_task("paused", count_to, interval=60, args=(1,))
    gone = scheduler.add_task("gone", count_to, interval=60, args=(1,))
    later = scheduler.add_task("later", count_to, interval=60, delay=3600, args=(1,))
    assert not scheduler.is_running
    assert ran.is_set() is False  # nothing runs before start()
    scheduler.pause_task(paused)
    scheduler.remove_task(gone)
    updated = scheduler.update_task(later, task_name="renamed", args=(2,))
    assert (updated.task_name, updated.args) == ("renamed", (2,))
    assert scheduler.get_task(paused).status is TaskStatus.PAUSED
    with pytest.raises(TaskNotFoundError):
        scheduler.get_task(gone)
    listed = scheduler.get_all_tasks(include_run_once=True)
    assert [t.task_name for t in listed] == ["kept", "paused", "renamed"]  # by next run
    assert listed[-1].next_run_at is not None
    with pytest.raises(ConfigurationError, match="interval"):  # checked as when running
        scheduler.update_task(later, interval=-1)
    added: list[str] = []
    scheduler.add_listener(Event.TASK_ADDED, lambda _event, task: added.append(task.id))
    with no_leftovers():
        scheduler.start()
        try:
            job = scheduler.wait_for_task(kept, timeout=WAIT)
            assert job.status is JobStatus.COMPLETED
            assert ran.is_set()
            assert scheduler.get_task(paused).status is TaskStatus.PAUSED
            tasks = {t.id: t for t in scheduler.get_all_tasks()}
            assert set(tasks) == {paused, later}
            assert tasks[later].task_name == "renamed"
            assert scheduler.get_all_jobs(task_id=paused) == []  # paused: it never ran
        finally:
            scheduler.shutdown()
    assert sorted(added) == sorted([kept, paused, later])  # each announced once, at start


def test_start_after_shutdown_starts_an_empty_scheduler() -> None:
    """One scheduler, started and shut down once per test, as one TestClient(app) per test does."""
    scheduler = Quiv()
    ended: list[str] = []
    scheduler.add_listener(Event.JOB_COMPLETED, lambda _event, task, job: ended.append(task.id))
    with no_leftovers():
        for _ in range(3):
            scheduler.start()
            assert scheduler.is_running
            assert scheduler.get_all_tasks(include_run_once=True) == []  # nothing carried over
            assert scheduler.get_all_jobs() == []
            task_id = scheduler.add_task("t", count_to, run_once=True, args=(2,))
            assert scheduler.wait_for_task(task_id, timeout=WAIT).status is JobStatus.COMPLETED
            scheduler.shutdown()
            assert not scheduler.is_running
            with pytest.raises(SchedulerStoppedError, match="shut down"):
                scheduler.get_all_tasks()
    assert len(ended) == 3  # listeners are settings: they stay across restarts
    never_started = Quiv()
    never_started.add_task("dropped", count_to, interval=1, args=(1,))
    never_started.shutdown()  # nothing to stop; the declared task is dropped
    with no_leftovers():
        never_started.start()
        try:
            assert never_started.get_all_tasks() == []
        finally:
            never_started.shutdown()


def test_a_failed_start_leaves_nothing_behind(tmp_path: Any) -> None:
    scheduler = Quiv(db_path=tmp_path / "missing-directory" / "quiv.db")
    with no_leftovers(), pytest.raises(StoreError):
        scheduler.start()
    assert not scheduler.is_running
    with no_leftovers(), pytest.raises(StoreError):  # a second start tries again
        scheduler.start()
    (tmp_path / "missing-directory").mkdir()
    with no_leftovers():
        scheduler.start()  # and succeeds once the cause is gone
        scheduler.shutdown()


def test_shutdown_timeout_abandons_a_handler_that_ignores_its_stop_event() -> None:
    gate = threading.Event()

    def stubborn() -> None:
        gate.wait(WAIT)

    try:
        with no_leftovers():
            scheduler = Quiv()
            scheduler.start()
            started = threading.Event()
            scheduler.add_listener(Event.JOB_STARTED, lambda *_: started.set())
            scheduler.add_task("stubborn", stubborn, run_once=True)
            assert started.wait(WAIT)
            scheduler.shutdown(timeout=0.05)
            assert not scheduler.is_running
            gate.set()  # let the abandoned thread end (no_leftovers joins it)
    finally:
        gate.set()


def test_constructor_validates_like_async_quiv() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        Quiv(backend="curio")
    with pytest.raises(ConfigurationError, match="backend_options"):
        Quiv(backend_options=["debug"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pool_size"):
        Quiv(pool_size="3")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        Quiv(QuivConfig(), pool_size=3)
    with pytest.raises(ConfigurationError, match="timeout"):
        Quiv().shutdown(timeout=-1)
    assert "new" in repr(Quiv())


# -- the scheduler's own thread ------------------------------------------------------------


def test_blocking_calls_on_the_schedulers_own_thread_raise_a_clear_error() -> None:
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def listener(event: Event, task: Task, job: Job) -> None:
        # No host loop: listeners run on the scheduler's own loop thread.
        outcome["thread"] = threading.current_thread().name
        try:
            scheduler.get_task(task.id)
        except QuivError as exc:
            outcome["error"] = exc
        outcome["cancel"] = scheduler.cancel_job(job.id)  # non-blocking: allowed
        scheduler.remove_listener(Event.JOB_COMPLETED, listener)  # allowed too
        done.set()

    with no_leftovers(), Quiv() as scheduler:
        scheduler.add_listener(Event.JOB_COMPLETED, listener)
        scheduler.add_task("once", count_to, run_once=True, args=(1,))
        assert done.wait(WAIT)
    assert outcome["thread"].startswith("quiv-")
    assert "cannot block the scheduler's own event loop" in str(outcome["error"])
    assert outcome["cancel"] is False


def test_async_callbacks_on_the_schedulers_loop_await_the_async_face() -> None:
    found: list[Task] = []
    done = threading.Event()

    async def listener(event: Event, task: Task) -> None:
        found.append(await scheduler.async_quiv.get_task(task.id))
        done.set()

    with no_leftovers(), Quiv() as scheduler:
        scheduler.add_listener(Event.TASK_ADDED, listener)
        task_id = scheduler.add_task("later", count_to, interval=60, delay=3600, args=(1,))
        assert done.wait(WAIT)
    assert [task.id for task in found] == [task_id]


def test_shutdown_from_a_callback_on_the_schedulers_thread_starts_it() -> None:
    called = threading.Event()

    def listener(event: Event, task: Task, job: Job) -> None:
        scheduler.shutdown()  # cannot wait for itself: starts the shutdown
        called.set()

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        scheduler.add_listener(Event.JOB_COMPLETED, listener)
        scheduler.add_task("once", count_to, run_once=True, args=(1,))
        assert called.wait(WAIT)
        scheduler.shutdown()  # waits for the shutdown the callback started
        assert not scheduler.is_running


def test_shutdown_from_inside_a_job_starts_it() -> None:
    returned = threading.Event()

    def quitter(_stop_event: threading.Event) -> None:
        scheduler.shutdown()  # waiting would wait for this very job
        returned.set()
        _stop_event.wait(WAIT)  # the shutdown cancels this job

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        ends = JobEnds(scheduler)
        task_id = scheduler.add_task("quitter", quitter, run_once=True)
        assert returned.wait(WAIT)
        assert ends.wait(task_id).status is JobStatus.CANCELLED
        scheduler.shutdown()  # waits for the shutdown the job started
        assert not scheduler.is_running


# -- inside an event loop (asyncio and trio) ----------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", pytest.param("trio", marks=needs_trio)])
def test_start_and_shutdown_without_yielding_to_the_loop(backend: str) -> None:
    # The main-loop bridge's task has not run yet when shutdown() stops it;
    # the loop must still be able to end (trio runs new tasks in any order).
    async def main() -> None:
        scheduler = Quiv()
        scheduler.start()
        scheduler.shutdown()

    for _ in range(20):
        with no_leftovers():
            runner = threading.Thread(target=anyio.run, args=(main,), kwargs={"backend": backend})
            runner.start()
            runner.join(WAIT)
            assert not runner.is_alive(), "the host loop did not end"


async def test_the_loop_that_calls_start_is_the_main_loop() -> None:
    here = threading.get_ident()
    backend = sniffio.current_async_library()
    progress: list[tuple[int, int, str]] = []
    on_main: list[tuple[str, int]] = []
    listened: list[tuple[Event, int]] = []
    done = anyio.Event()

    async def on_progress(**payload: Any) -> None:
        progress.append((payload["i"], threading.get_ident(), sniffio.current_async_library()))
        if payload["i"] == 50:
            done.set()

    def nested_step() -> None:
        run_on_main(lambda: on_main.append(("from a job", threading.get_ident())))

    def handler(_progress_hook: Callable[..., None]) -> None:
        nested_step()
        count_to(50, _progress_hook)

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()  # on this test's loop
        try:
            completed = anyio.Event()

            def on_completed(event: Event, task: Task, job: Job) -> None:
                listened.append((event, threading.get_ident()))
                completed.set()

            scheduler.add_listener(Event.JOB_COMPLETED, on_completed)
            scheduler.add_task("progress", handler, run_once=True, progress_callback=on_progress)
            with anyio.fail_after(WAIT):
                await done.wait()
                await completed.wait()
            run_on_main(lambda: on_main.append(("from main-loop code", threading.get_ident())))
        finally:
            scheduler.shutdown()
    assert [i for i, _, _ in progress] == list(range(1, 51))
    assert {(thread, lib) for _, thread, lib in progress} == {(here, backend)}
    assert listened == [(Event.JOB_COMPLETED, here)]
    assert ("from main-loop code", here) in on_main  # a sync target runs inline
    assert ("from a job", here) in on_main


async def test_await_job_and_await_task_do_not_block_the_calling_loop() -> None:
    gate = threading.Event()

    def gated(_stop_event: threading.Event) -> str:
        gate.wait(WAIT)
        return "done"

    with no_leftovers():
        scheduler = Quiv()
        await anyio.to_thread.run_sync(scheduler.start)  # no loop there: its own main loop
        try:
            task_id = scheduler.add_task("gated", gated, run_once=True)
            results: list[Job] = []

            async def wait() -> None:
                results.append(await scheduler.await_task(task_id, timeout=WAIT))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                gate.set()  # runs only because the waiting task does not block this loop
            (job,) = results
            assert job.status is JobStatus.COMPLETED
            again = await scheduler.await_job(job.id, timeout=WAIT)  # already ended
            assert again.id == job.id
            with pytest.raises(TimeoutError):
                other = scheduler.add_task("other", wait_for_stop, run_once=True)
                await scheduler.await_task(other, timeout=0.01)
        finally:
            gate.set()
            await anyio.to_thread.run_sync(scheduler.shutdown)


async def test_cancelling_await_task_stops_the_wait() -> None:
    with no_leftovers():
        scheduler = Quiv()
        await anyio.to_thread.run_sync(scheduler.start)
        try:
            task_id = scheduler.add_task("wait", wait_for_stop, run_once=True)
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(scheduler.await_task, task_id)
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()
            assert scope.cancelled_caught
            assert scheduler.get_task(task_id).status is TaskStatus.RUNNING
        finally:
            await anyio.to_thread.run_sync(scheduler.shutdown)


async def test_calls_from_the_main_loops_thread_and_worker_threads() -> None:
    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        try:
            # A sync FastAPI endpoint runs in a worker thread like this one.
            task_id = await anyio.to_thread.run_sync(
                lambda: scheduler.add_task("t", wait_for_stop, interval=60)
            )
            # A blocking call on the main loop's own thread works (it blocks briefly).
            assert scheduler.get_task(task_id).task_name == "t"
            scheduler.remove_task(task_id)  # cancels its job
            (job,) = await anyio.to_thread.run_sync(lambda: scheduler.get_all_jobs(task_id=task_id))
            job = await anyio.to_thread.run_sync(scheduler.wait_for_job, job.id, WAIT)
            assert job.status is JobStatus.CANCELLED
        finally:
            # Shutting down from a worker thread waits for the main loop's callbacks.
            await anyio.to_thread.run_sync(scheduler.shutdown)


async def test_shutdown_on_the_main_loops_thread_does_not_wait_for_that_loop() -> None:
    delivered: list[int] = []
    started = threading.Event()

    async def on_progress(**payload: Any) -> None:
        delivered.append(payload["i"])

    def chatty(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> None:
        started.set()
        i = 0
        while not _stop_event.is_set():
            i += 1
            _progress_hook(i=i)

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        scheduler.add_task("chatty", chatty, run_once=True, progress_callback=on_progress)
        assert started.wait(WAIT)
        # Blocks this loop, which cannot deliver the queued callbacks meanwhile.
        scheduler.shutdown()
        assert not scheduler.is_running


# -- the safety net ----------------------------------------------------------------------

FORGOTTEN = """\
import threading

from quiv import Quiv

scheduler = Quiv()
scheduler.start()
started = threading.Event()


def polite(_stop_event):
    started.set()
    if _stop_event.wait(60):
        print("the job saw its stop event", flush=True)


scheduler.add_task("forgotten", polite, run_once=True)
assert started.wait(10)
print("exiting without shutdown()", flush=True)
"""


def test_a_forgotten_scheduler_is_shut_down_at_exit(tmp_path: Path) -> None:
    # The scheduler's threads are daemons, so without the safety net the
    # interpreter would kill the running job without telling it.
    result = subprocess.run(
        [sys.executable, "-c", FORGOTTEN],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "exiting without shutdown()\nthe job saw its stop event\n"
    assert "was never shut down; shutting it down at exit" in result.stderr
    assert os.listdir(tmp_path) == []
