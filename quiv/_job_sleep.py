"""``current_job().sleep()``: a handler's cancel-aware sleep on the scheduler's clock.

With a real-time clock it is real time. Under a
:class:`~quiv.testing.VirtualClock` it registers with the clock, which wakes
it when virtual time reaches its end; meanwhile the clock counts the job as
waiting for time, not at work, so ``advance()`` may move on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel
from anyio.lowlevel import current_token

from ._checks import check_number
from ._errors import JobCancelledError
from ._xthread.loops import call_soon

__all__ = ("sleep_async", "sleep_blocking")


@runtime_checkable
class VirtualTime(Protocol):
    """A clock that handlers sleep on (:class:`quiv.testing.VirtualClock`)."""

    def _add_sleeper(self, job_id: str, seconds: float, wake: Callable[[], object]) -> int: ...

    def _remove_sleeper(self, key: int) -> None: ...


class JobControl(Protocol):
    """What a sleep needs of a job's :class:`quiv._context.JobControl`."""

    @property
    def cancelled(self) -> bool: ...

    @property
    def cancel_reason(self) -> str | None: ...

    @property
    def clock(self) -> object: ...

    def get_stop_event(self) -> threading.Event: ...

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]: ...


def _raise_if_cancelled(control: JobControl) -> None:
    if control.cancelled:
        raise JobCancelledError(control.cancel_reason or "job cancelled")


def sleep_blocking(control: JobControl, job_id: str, seconds: object) -> None:
    """Sleep *seconds* on the job's clock in this (worker) thread; raise if cancelled."""
    duration = check_number(seconds, "seconds")
    _raise_if_cancelled(control)
    clock = control.clock
    if not isinstance(clock, VirtualTime):
        control.get_stop_event().wait(duration)
    elif duration > 0:
        woken = threading.Event()
        forget = control.on_cancel(woken.set)
        key = clock._add_sleeper(job_id, duration, woken.set)
        try:
            woken.wait()
        finally:
            clock._remove_sleeper(key)
            forget()
    _raise_if_cancelled(control)


async def sleep_async(control: JobControl, job_id: str, seconds: object) -> None:
    """Sleep *seconds* on the job's clock in this (worker) loop; a job cancel cancels it."""
    duration = check_number(seconds, "seconds")
    _raise_if_cancelled(control)
    clock = control.clock
    if not isinstance(clock, VirtualTime):
        await anyio.sleep(duration)
    elif duration > 0:
        woken = anyio.Event()
        token = current_token()
        key = clock._add_sleeper(job_id, duration, lambda: call_soon(token, woken.set))
        try:
            await woken.wait()
        finally:
            clock._remove_sleeper(key)
    else:
        await anyio.lowlevel.checkpoint()
    _raise_if_cancelled(control)
