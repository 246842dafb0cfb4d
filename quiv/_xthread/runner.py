"""Running jobs on a pool worker thread.

:func:`work` is what the scheduler runs on one of its worker threads (see
:mod:`quiv._threads`): it takes jobs from the ready queue until the queue is
empty. Sync handlers are called right on the worker thread. Async handlers run
in an event loop on that thread (the host's backend unless configured
otherwise): a worker that meets an async job starts a loop and runs the
following async jobs in it too, each in its own cancel scope, which the job's
cancellation cancels through a non-blocking hand-off. A sync job ends the
streak, so sync handlers never run inside an event loop (they may call
``asyncio.run`` themselves). The main loop never runs a handler.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from anyio.lowlevel import current_token

from .._backends import ASYNCIO, current_backend
from .._context import JobContext, reset_current, set_current
from .._core.records import JobRun
from .pool import ReadyQueue

__all__ = ("PROGRESS", "TRACEBACK_CHARS", "Outcome", "encode_result", "error_type_name", "work")

Report = Callable[[tuple[JobRun, "Outcome | None"]], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler call ended, as seen from the worker thread."""

    started: bool
    error: BaseException | None = None
    #: the job's cancel scope caught a cancellation (async handlers)
    cancelled: bool = False
    duration: float | None = None
    #: what the handler returned
    result: Any = None
    #: the length of the result's JSON text (ASCII, so its size in bytes);
    #: ``-1`` if JSON cannot represent it. Measured here, off the scheduler's loop.
    result_size: int = 0
    #: a failure's qualified exception type and formatted traceback (bounded)
    error_type: str | None = None
    traceback: str | None = None


#: the most of a failure's traceback a job keeps (its end: the innermost frames)
TRACEBACK_CHARS = 8192


def encode_result(value: Any) -> str | None:
    """*value* as compact JSON text, or ``None`` if JSON cannot represent it."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


def _returned(value: Any, duration: float, cancelled: bool = False) -> Outcome:
    if value is None or cancelled:
        return Outcome(True, cancelled=cancelled, duration=duration)
    text = encode_result(value)
    return Outcome(
        True,
        cancelled=cancelled,
        duration=duration,
        result=value,
        result_size=-1 if text is None else len(text),
    )


def error_type_name(error: BaseException) -> str:
    """``"ValueError"`` for a builtin, ``"package.module.Name"`` otherwise."""
    kind = type(error)
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


def _is_ours(tb: TracebackType) -> bool:
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith("quiv._xthread")


def _failed(error: BaseException, duration: float) -> Outcome:
    tb = error.__traceback__
    # start at the handler: leave out quiv's own frames that called it
    while tb is not None and tb.tb_next is not None and _is_ours(tb):
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(error), error, tb))
    except Exception:  # a user's exception whose formatting fails: the type still says
        text = f"{error_type_name(error)}: <traceback unavailable>\n"
    if len(text) > TRACEBACK_CHARS:
        text = "...\n" + text[-TRACEBACK_CHARS:]
    return Outcome(
        True, error=error, duration=duration, error_type=error_type_name(error), traceback=text
    )


_NOT_STARTED = Outcome(started=False)
#: the notice that a job's progress changed (compared by identity; never an end)
PROGRESS = Outcome(started=True)


def work(queue: ReadyQueue, report: Report, backend: str) -> None:
    """A pool worker: run queued jobs one after the other until the queue is empty.

    ``report((run, None))`` announces that a handler starts;
    ``report((run, outcome))`` that it ended.
    """
    run = queue.pop(finished_one=False)
    while run is not None:
        if run.handler.is_async:
            # Handed over in a list the streak empties: anyio.run keeps its
            # arguments until it returns, which may be a linger time later.
            first = [run]
            run = None
            run = anyio.run(_async_streak, queue, report, first, backend=backend)
            continue
        # A context of its own, so context variables a handler sets do not
        # leak into the next job this worker runs.
        outcome = contextvars.copy_context().run(_execute_sync, run, report, backend)
        report((run, outcome))
        # An idle worker must hold on to nothing of its last job: the job
        # refers to its task, and so to the handler and its arguments.
        del outcome
        run = None
        run = queue.pop(finished_one=True)


async def _async_streak(queue: ReadyQueue, report: Report, first: list[JobRun]) -> JobRun | None:
    """Run async jobs in this loop until the queue is empty or a sync job comes up.

    *first* holds the first job; it is taken out. Return that sync job
    (already taken from the queue), or ``None``.
    """
    run: JobRun | None = first.pop()
    while run is not None and run.handler.is_async:
        report((run, await _execute_isolated(run, report)))
        run = None  # see work(): hold nothing of the last job while waiting
        run = queue.pop(finished_one=True)
    return run


async def _execute_isolated(run: JobRun, report: Report) -> Outcome:
    """Run one async job as if it had the loop to itself.

    The job runs in a task of its own, which starts with a copy of this
    context, so context variables it sets stay with it; and tasks it started
    without awaiting them (asyncio's ``create_task``) are cancelled before its
    end is reported, as a loop of its own would do when it closed.
    """
    if current_backend() is ASYNCIO:
        import asyncio

        outcome = await asyncio.get_running_loop().create_task(_execute_async(run, report))
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        if leftovers:
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)
        return outcome
    import trio

    outcomes: list[Outcome] = []

    async def job() -> None:
        outcomes.append(await _execute_async(run, report))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(job)
    return outcomes[0]


def _begin(run: JobRun, report: Report) -> Mapping[str, Any] | None:
    """Mark *run* started and return its keyword arguments, or ``None`` if it was cancelled.

    A job dispatched ahead of its deadline first waits for it, on this thread,
    which keeps time far more precisely than an event loop's timer.
    """
    start_at = run.start_at
    if start_at is not None:
        ahead = start_at - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    if not run.control.begin():  # cancelled before it started
        return None
    report((run, None))
    ctx = run.ctx
    spec = run.handler
    kwargs = run.task.kwargs
    if spec.injected:
        kwargs = {**kwargs, **{name: _INJECT[kind](ctx) for name, kind in spec.injected.items()}}
    return kwargs


_INJECT: dict[str, Callable[[JobContext], Any]] = {
    "job_id": lambda ctx: ctx.job_id,
    "stop_event": lambda ctx: ctx.stop_event,
    "progress_hook": lambda ctx: ctx.progress,
}


def _execute_sync(run: JobRun, report: Report, backend: str) -> Outcome:
    kwargs = _begin(run, report)
    if kwargs is None:
        return _NOT_STARTED
    token = set_current(run.ctx)
    begin = time.perf_counter()
    try:
        result = run.task.func(*run.task.args, **kwargs)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
            awaitable = result
            cancelled, result = anyio.run(_await_in_scope, run, lambda: awaitable, backend=backend)
            return _returned(result, time.perf_counter() - begin, cancelled)
        return _returned(result, time.perf_counter() - begin)
    except BaseException as exc:  # recorded, never propagated into the scheduler
        return _failed(exc, time.perf_counter() - begin)
    finally:
        reset_current(token)


async def _execute_async(run: JobRun, report: Report) -> Outcome:
    kwargs = _begin(run, report)
    if kwargs is None:
        return _NOT_STARTED
    token = set_current(run.ctx)
    begin = time.perf_counter()
    func, args = run.task.func, run.task.args
    try:
        cancelled, result = await _await_in_scope(run, lambda: func(*args, **kwargs))
        return _returned(result, time.perf_counter() - begin, cancelled)
    except BaseException as exc:  # recorded, never propagated into the scheduler
        return _failed(exc, time.perf_counter() - begin)
    finally:
        reset_current(token)


async def _await_in_scope(
    run: JobRun, make_awaitable: Callable[[], Awaitable[Any]]
) -> tuple[bool, Any]:
    """Await the handler in a cancel scope the job's cancellation reaches.

    Return ``(cancelled, what it returned)``.
    """
    result: Any = None
    with anyio.CancelScope() as scope:
        run.control.attach_worker(current_token(), scope)
        try:
            result = await make_awaitable()
        finally:
            run.control.detach_worker()
    return scope.cancelled_caught, result
