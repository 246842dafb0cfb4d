"""quiv's worker threads: daemon threads, so an abandoned handler never blocks exit.

The pool (``quiv._xthread.threads.WorkerThreads``) on its own: results and errors reach
the caller, each call runs in a copy of the caller's context, threads are
reused and are daemons, cancelling the caller abandons the call, ``close()``
and the idle timeout end the threads. Then the point of it all: a process
whose scheduler abandoned handlers that never return (a sync one, and an async
one blocking its worker loop) exits at once after ``shutdown``, on asyncio and
on trio, from either face.
"""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import sniffio
from scheduler_helpers import WAIT, Recorder

from quiv import AsyncQuiv, Event
from quiv._core.outcomes import ABANDONED_REASON
from quiv._xthread.threads import WorkerThreads

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


async def join(thread: threading.Thread) -> None:
    await anyio.to_thread.run_sync(thread.join, WAIT)
    assert not thread.is_alive(), f"{thread.name} did not exit"


async def test_a_call_returns_its_result_or_raises_its_error() -> None:
    threads = WorkerThreads()
    try:
        assert await threads.run_sync(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            await threads.run_sync(divmod, 1, 0)
    finally:
        threads.close()


async def test_a_call_runs_in_a_copy_of_the_callers_context_without_its_loop() -> None:
    """As with ``to_thread``: the caller's variables are seen, the call's own
    changes stay with it, and no event loop is reported in the thread."""

    def probe() -> tuple[str, str | None]:
        seen = _var.get()
        _var.set("changed in the thread")
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        return seen, library

    threads = WorkerThreads()
    token = _var.set("the caller's")
    try:
        assert await threads.run_sync(probe) == ("the caller's", None)
        assert _var.get() == "the caller's"
        assert await threads.run_sync(_var.get) == "the caller's"  # not the previous call's
    finally:
        _var.reset(token)
        threads.close()


async def test_threads_are_daemons_and_reused_for_calls_one_after_the_other() -> None:
    threads = WorkerThreads()
    try:
        first = await threads.run_sync(threading.current_thread)
        for _ in range(5):
            assert await threads.run_sync(threading.current_thread) is first
        assert first.daemon
        assert first is not threading.current_thread()
    finally:
        threads.close()
    await join(first)  # idle: close() ends it


async def test_concurrent_calls_run_on_threads_of_their_own() -> None:
    barrier = threading.Barrier(3, timeout=WAIT)  # fails unless all three run at once
    seen: list[threading.Thread] = []

    def meet() -> None:
        barrier.wait()
        seen.append(threading.current_thread())

    threads = WorkerThreads()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(threads.run_sync, meet)
    finally:
        threads.close()
    assert len(set(seen)) == 3
    for thread in seen:
        await join(thread)


async def test_cancelling_the_caller_abandons_the_call() -> None:
    entered, gate, finished = threading.Event(), threading.Event(), threading.Event()
    ran_on: list[threading.Thread] = []

    def stubborn() -> str:
        ran_on.append(threading.current_thread())
        entered.set()
        gate.wait(WAIT)
        finished.set()
        return "dropped"

    threads = WorkerThreads()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(threads.run_sync, stubborn)
            assert await anyio.to_thread.run_sync(entered.wait, WAIT)
            tg.cancel_scope.cancel()
        assert not finished.is_set()  # the caller did not wait for the thread
    finally:
        gate.set()
        threads.close()
    await join(ran_on[0])  # closed: it exits once its call returns
    assert finished.is_set()


async def test_a_call_after_close_still_runs_and_its_thread_exits() -> None:
    threads = WorkerThreads()
    threads.close()
    thread = await threads.run_sync(threading.current_thread)
    await join(thread)


async def test_an_idle_thread_exits_after_the_idle_timeout() -> None:
    threads = WorkerThreads(idle_timeout=0.0)
    thread = await threads.run_sync(threading.current_thread)
    await join(thread)  # nothing closed the pool
    assert await threads.run_sync(threading.current_thread) is not thread
    threads.close()


async def test_handlers_run_on_daemon_threads() -> None:
    daemons: list[bool] = []

    def sync_handler() -> None:
        daemons.append(threading.current_thread().daemon)

    async def async_handler() -> None:
        sync_handler()

    async with AsyncQuiv(pool_size=2) as s:
        rec = Recorder(s, [Event.JOB_COMPLETED])
        await s.add_task("sync", sync_handler, run_once=True)
        await s.add_task("async", async_handler, run_once=True)
        await rec.wait_count(Event.JOB_COMPLETED, 2)
    assert daemons == [True, True]


# -- the process exits ---------------------------------------------------------------------

APP = """\
import sys
import threading

import anyio

from quiv import AsyncQuiv, Event, Quiv

backend, face = sys.argv[1], sys.argv[2]
started = threading.Semaphore(0)


def stubborn():  # ignores its stop event and never returns
    started.release()
    threading.Event().wait()


async def stubborn_async():  # blocks its worker loop: no await to cancel
    stubborn()


def wait_for_both():
    return all(started.acquire(timeout=10) for _ in range(2))


def on_cancelled(event, task, job):
    print(job.error_message, flush=True)


async def async_face():
    async with AsyncQuiv(shutdown_timeout=0.1) as s:
        s.add_listener(Event.JOB_CANCELLED, on_cancelled)
        await s.add_task("stubborn", stubborn, run_once=True)
        await s.add_task("stubborn_async", stubborn_async, run_once=True)
        assert await anyio.to_thread.run_sync(wait_for_both)


if face == "async":
    anyio.run(async_face, backend=backend)
else:
    s = Quiv(backend=backend)
    s.start()
    s.add_listener(Event.JOB_CANCELLED, on_cancelled)
    s.add_task("stubborn", stubborn, run_once=True)
    s.add_task("stubborn_async", stubborn_async, run_once=True)
    assert wait_for_both()
    s.shutdown(timeout=0.1)
print("shut down", flush=True)
"""


@pytest.mark.parametrize("face", ["async", "sync"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_process_exits_although_an_abandoned_handler_never_returns(
    backend: str, face: str, tmp_path: Path
) -> None:
    pytest.importorskip(backend)
    try:
        result = subprocess.run(
            [sys.executable, "-c", APP, backend, face],
            cwd=Path(__file__).parent.parent,
            env={**os.environ, "TMPDIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the process did not exit; its output: {exc.stdout!r} {exc.stderr!r}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{ABANDONED_REASON}\n" * 2 + "shut down\n", result.stderr
    assert os.listdir(tmp_path) == []
