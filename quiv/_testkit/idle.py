"""``run_until_idle``: wait until a scheduler has nothing due now and no handler at work."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Collection
from typing import TYPE_CHECKING, overload

import anyio

from .._checks import check_number
from .._errors import ConfigurationError
from .clock import VirtualClock
from .settle import describe_busy, settle

if TYPE_CHECKING:
    from .._core.engine import Engine
    from .._faces.async_face import AsyncQuiv
    from .._faces.sync_face import Quiv

__all__ = ("engine_of", "run_until_idle")

#: how long run_until_idle() waits by default, in real seconds
IDLE_TIMEOUT = 5.0


def engine_of(scheduler: AsyncQuiv) -> Engine | None:
    """The engine of a running scheduler, or ``None`` if it is not running."""
    if not scheduler.is_running:
        return None
    return scheduler._check_running()


def _waiting(engine: Engine) -> Collection[str]:
    clock = engine.clock
    return clock._waiting_jobs() if isinstance(clock, VirtualClock) else ()


async def _until_idle(scheduler: AsyncQuiv, timeout: float) -> None:
    engine = engine_of(scheduler)
    if engine is None:  # a scheduler that is not running has nothing at work
        return
    clock = engine.clock
    subscribe = clock._subscribe if isinstance(clock, VirtualClock) else None
    try:
        with anyio.fail_after(timeout):
            await settle(lambda: [engine], lambda: _waiting(engine), subscribe)
    except TimeoutError:
        busy = describe_busy(engine, _waiting(engine))
        raise TimeoutError(
            f"run_until_idle: still busy after {timeout:g} s: "
            f"{', '.join(busy) or 'work due on the scheduler loop'}"
        ) from None


@overload
def run_until_idle(scheduler: AsyncQuiv, *, timeout: float = ...) -> Awaitable[None]: ...
@overload
def run_until_idle(scheduler: Quiv, *, timeout: float = ...) -> None: ...
def run_until_idle(
    scheduler: AsyncQuiv | Quiv, *, timeout: float = IDLE_TIMEOUT
) -> Awaitable[None] | None:
    """Return once nothing is due now and no handler of *scheduler* is at work.

    Time does not move: under a :class:`VirtualClock` a handler asleep on the
    clock (``current_job().sleep()``) counts as idle, since it waits for time
    the test moves. quiv knows its worker threads and worker loops, so a
    handler that works on one is waited for, however long it takes in real
    time (up to *timeout*). Listener and progress calls queued for the main
    loop are delivered first.

    With an :class:`~quiv.AsyncQuiv` it is a coroutine: ``await
    run_until_idle(scheduler)`` on the scheduler's loop. With a
    :class:`~quiv.Quiv` it blocks (call it from any thread but the
    scheduler's own loop). A scheduler that is not running is idle.

    :param timeout: the longest wait, in real seconds
    :raises TimeoutError: if handlers are still at work after *timeout* (it names them)
    :raises ConfigurationError: if *timeout* is not a number > 0, or *scheduler*
        is not a scheduler
    """
    from .._faces.async_face import AsyncQuiv
    from .._faces.sync_face import Quiv

    limit = check_number(timeout, "timeout", exclusive=True, allow_inf=True)
    if isinstance(scheduler, AsyncQuiv):
        return _until_idle(scheduler, limit)
    if isinstance(scheduler, Quiv):
        if scheduler.is_running:
            scheduler.portal.call(functools.partial(_until_idle, scheduler.async_quiv, limit))
        return None
    raise ConfigurationError.bad_value("scheduler", scheduler, "an AsyncQuiv or a Quiv")
