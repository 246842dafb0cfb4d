"""Reaching the main loop from anywhere: ``run_on_main`` and ``call_on_main``.

The target scheduler is the one running the current job (found through the
job context), or else the most recently started scheduler that is still
running. On the main loop's own thread nothing crosses threads: sync targets
run inline and async targets start as tasks owned by the scheduler.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._context import control_of, current_job
from .._errors import MainLoopUnavailableError
from .._xthread.loops import close_awaitable
from .bridge import MainCall, MainLoopBridge

__all__ = ("call_on_main", "call_on_main_async", "run_on_main")

T = TypeVar("T")

_JOB_CANCELLED = "job cancelled"

_registry_lock = threading.Lock()
_running: list[MainLoopBridge] = []


def _reset_after_fork() -> None:
    """In a forked child: the parent's schedulers and loops do not exist here."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _running.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def register(bridge: MainLoopBridge) -> None:
    """Make *bridge* the default target for code outside jobs."""
    with _registry_lock:
        _running.append(bridge)


def unregister(bridge: MainLoopBridge) -> None:
    with _registry_lock:
        if bridge in _running:
            _running.remove(bridge)


def resolve_bridge() -> MainLoopBridge:
    """The bridge of the current job's scheduler, else of the latest running one.

    :raises MainLoopUnavailableError: if there is none
    """
    job = current_job()
    bridge = control_of(job).bridge if job is not None else None
    if bridge is None or bridge.closed:
        with _registry_lock:
            live = [b for b in _running if not b.closed]
        if not live:
            raise MainLoopUnavailableError(
                "no running quiv scheduler: start one (AsyncQuiv or Quiv) before "
                "dispatching to the main loop"
            )
        bridge = live[-1]
    return bridge


def run_on_main(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Run ``func(*args, **kwargs)`` on the main loop, without waiting.

    Works at any depth inside a job (sync or async handler) and from main-loop
    code. On the main loop's thread a sync *func* runs inline and an async one
    starts as a task owned by the scheduler (shutdown cancels it). Elsewhere the
    call is handed over without blocking. Failures are logged, never raised.

    :raises MainLoopUnavailableError: if no scheduler or main loop can be found
    """
    bridge = resolve_bridge()
    if bridge.on_main_thread():
        bridge.run_here(func, args, kwargs)
    else:
        bridge.fire(func, args, kwargs)


def call_on_main(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` on the main loop and return its result.

    For sync code (sync handlers, threads). *func* may be sync or async; its
    exception propagates to the caller. If the current job is cancelled while
    waiting, the target is cancelled and :class:`~quiv.JobCancelledError` is
    raised, which ends the job as cancelled. Async handlers should use
    :func:`call_on_main_async` instead, which does not block their loop.

    :raises MainLoopUnavailableError: if no scheduler or main loop can be found,
        or if called on the main loop's own thread with an async target (waiting
        there would deadlock; ``await`` the target instead)
    """
    bridge = resolve_bridge()
    if bridge.on_main_thread():
        value = func(*args, **kwargs)
        if inspect.isawaitable(value):
            close_awaitable(value)
            raise MainLoopUnavailableError(
                "call_on_main cannot wait for an async target on the main loop's own "
                "thread; await the target directly"
            )
        return value
    call = MainCall()
    unhook = _cancel_with_job(bridge, call)
    try:
        bridge.call(func, args, kwargs, into=call)
        result: T = call.wait()
    finally:
        if unhook is not None:
            unhook()
    return result


async def call_on_main_async(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Await ``func(*args, **kwargs)`` run on the main loop; return its result.

    The async-handler variant of :func:`call_on_main`: it waits without blocking
    the handler's own event loop. Cancelling the waiting task (for example by
    cancelling the job) cancels the target too.

    :raises MainLoopUnavailableError: if no scheduler or main loop can be found
    """
    bridge = resolve_bridge()
    if bridge.on_main_thread():
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result
    call = MainCall()
    unhook = _cancel_with_job(bridge, call)
    try:
        bridge.call(func, args, kwargs, into=call)
        try:
            await wait_call(call)
        except BaseException:
            bridge.cancel_call(call, _JOB_CANCELLED)
            raise
    finally:
        if unhook is not None:
            unhook()
    return call.result()


def _cancel_with_job(bridge: MainLoopBridge, call: MainCall) -> Callable[[], None] | None:
    """Cancel *call* if the current job is cancelled; return the unhook function.

    Called before the call is posted: once posted, the main loop wakes and
    waits for the GIL, so work left between posting and blocking delays the
    round trip. A job cancelled first settles the call, which then never runs.
    """
    job = current_job()
    if job is None:
        return None
    return control_of(job).on_cancel(
        lambda: bridge.cancel_call(call, job.cancel_reason or _JOB_CANCELLED)
    )


async def wait_call(call: MainCall) -> None:
    """Wait, in the current event loop, until *call* is settled."""
    await call.wait_settled()
