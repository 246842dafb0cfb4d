"""Eager mode: work a request adds runs to its end before the request returns.

For route tests: inside :func:`eager_mode`, the scheduler's ``add_task``,
``run_task_immediately`` and ``resume_task`` return only once the scheduler
is idle again (:func:`~quiv.testing.run_until_idle`), so a job added by a
request has ended when the response arrives. Handlers are called exactly as
in production, on a worker thread or a worker loop; only the caller waits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._checks import check_number
from .._context import current_job
from .._errors import ConfigurationError
from .idle import IDLE_TIMEOUT, run_until_idle

if TYPE_CHECKING:
    from .._faces.async_face import AsyncQuiv
    from .._faces.sync_face import Quiv

__all__ = ("eager_mode",)

#: the methods that may make work due now
EAGER_METHODS = ("add_task", "run_task_immediately", "resume_task")


def _eager_async(scheduler: AsyncQuiv, method: Callable[..., Any], timeout: float) -> Any:
    @functools.wraps(method)
    async def eager(*args: Any, **kwargs: Any) -> Any:
        result = await method(*args, **kwargs)
        if current_job() is None:  # a handler that adds work must not wait for itself
            await run_until_idle(scheduler, timeout=timeout)
        return result

    return eager


def _eager_sync(scheduler: Quiv, method: Callable[..., Any], timeout: float) -> Any:
    @functools.wraps(method)
    def eager(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        if current_job() is None and scheduler.is_running:
            run_until_idle(scheduler, timeout=timeout)
        return result

    return eager


@contextmanager
def eager_mode(scheduler: AsyncQuiv | Quiv, *, timeout: float = IDLE_TIMEOUT) -> Iterator[None]:
    """While the block runs, calls that add work to *scheduler* wait for it to end.

    ``add_task``, ``run_task_immediately`` and ``resume_task`` (of this
    scheduler object, both faces) return once the scheduler is idle: nothing
    due now, no handler at work. Work due later (a ``delay``, the next run of
    an interval) is not waited for: under a
    :class:`~quiv.testing.VirtualClock`, move the clock for it. Calls made by
    handlers do not wait, so a job that adds a task does not wait for itself.

    :param timeout: the longest each call waits, in real seconds
    :raises TimeoutError: from a call whose work is still running after *timeout*
    :raises ConfigurationError: for a bad *timeout*, or a *scheduler* that is not one
    """
    from .._faces.async_face import AsyncQuiv
    from .._faces.sync_face import Quiv

    limit = check_number(timeout, "timeout", exclusive=True, allow_inf=True)
    if isinstance(scheduler, AsyncQuiv):
        wrap: Callable[[Any, Callable[..., Any], float], Any] = _eager_async
    elif isinstance(scheduler, Quiv):
        wrap = _eager_sync
    else:
        raise ConfigurationError.bad_value("scheduler", scheduler, "an AsyncQuiv or a Quiv")
    if any(name in vars(scheduler) for name in EAGER_METHODS):
        raise ConfigurationError("eager_mode() is already on for this scheduler")
    for name in EAGER_METHODS:
        setattr(scheduler, name, wrap(scheduler, getattr(scheduler, name), limit))
    try:
        yield
    finally:
        for name in EAGER_METHODS:
            delattr(scheduler, name)
