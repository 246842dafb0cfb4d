"""Running one job on a worker thread.

:func:`execute` is what the scheduler hands to ``anyio.to_thread.run_sync``.
Sync handlers are called right there; async handlers (and awaitables returned
by sync handlers) run in a fresh event loop on that thread, inside a cancel
scope that the job's cancellation cancels through a non-blocking hand-off.
The main loop is never used to run a handler.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from anyio.lowlevel import current_token

from ._context import JobContext, _current
from ._ready import ReadyQueue
from ._state import JobRun, utcnow

__all__ = ("Outcome", "execute", "work")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler call ended, as seen from the worker thread."""

    started: bool
    error: BaseException | None = None
    #: the worker loop's cancel scope caught a cancellation
    cancelled: bool = False
    duration: float | None = None


def _injected_values(ctx: JobContext) -> dict[str, Any]:
    return {"job_id": ctx.job_id, "stop_event": ctx.stop_event, "progress_hook": ctx.progress}


def execute(
    run: JobRun,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    backend: str,
    notify_started: Callable[[JobRun], None],
) -> Outcome:
    """Run *run*'s handler on this (worker) thread and report how it ended.

    Never raises: every exception of the handler, ``BaseException`` included,
    is returned in the :class:`Outcome`.
    """
    ctx = run.ctx
    with ctx._lock:
        if ctx.stop_event.is_set():  # cancelled before it started
            return Outcome(started=False)
        run.started = True
        run.started_at = utcnow()
    notify_started(run)
    spec = run.handler
    if spec.injected:
        values = _injected_values(ctx)
        kwargs = {**kwargs, **{name: values[kind] for name, kind in spec.injected.items()}}
    token = _current.set(ctx)
    begin = time.perf_counter()
    try:
        if spec.is_async:
            cancelled = _run_in_worker_loop(run, lambda: spec.func(*args, **kwargs), backend)
            return Outcome(True, cancelled=cancelled, duration=time.perf_counter() - begin)
        result = spec.func(*args, **kwargs)
        if inspect.isawaitable(result):
            cancelled = _run_in_worker_loop(run, lambda: result, backend)
            return Outcome(True, cancelled=cancelled, duration=time.perf_counter() - begin)
        return Outcome(True, duration=time.perf_counter() - begin)
    except BaseException as exc:  # recorded, never propagated into the scheduler
        return Outcome(True, error=exc, duration=time.perf_counter() - begin)
    finally:
        _current.reset(token)


def _run_in_worker_loop(
    run: JobRun, make_awaitable: Callable[[], Awaitable[Any]], backend: str
) -> bool:
    """Await the handler in a new event loop on this thread; return True if cancelled."""

    async def main() -> bool:
        with anyio.CancelScope() as scope:
            run.attach_worker(current_token(), scope)
            try:
                await make_awaitable()
            finally:
                run.detach_worker()
        return scope.cancelled_caught

    return anyio.run(main, backend=backend)


def work(
    queue: ReadyQueue,
    report: Callable[[tuple[JobRun, Outcome | None]], None],
    backend: str,
) -> None:
    """A pool worker: run queued jobs one after the other until the queue is empty.

    ``report((run, None))`` announces that a handler starts;
    ``report((run, outcome))`` that it ended.
    """
    started = partial(_report_started, report)
    finished_one = False
    while (run := queue.pop(finished_one)) is not None:
        settings = run.task.settings
        report((run, execute(run, settings.args, settings.kwargs, backend, started)))
        finished_one = True


def _report_started(report: Callable[[tuple[JobRun, Outcome | None]], None], run: JobRun) -> None:
    report((run, None))
