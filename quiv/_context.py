"""The job context: what code running inside a job can find without parameters.

One :class:`JobContext` exists per job run. It is set in a context variable in
the worker thread (sync handlers) or the worker loop (async handlers), so
helpers such as :func:`~quiv.run_on_main`, :func:`~quiv.run_subprocess` and
:class:`~quiv.JobLogFilter` find the job at any call depth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._errors import JobCancelledError

if TYPE_CHECKING:
    from ._mainloop.bridge import MainLoopBridge

__all__ = ("JobContext", "current_job")

_current: ContextVar[JobContext | None] = ContextVar("quiv_current_job", default=None)


class JobContext:
    """What a running job knows about itself.

    Obtain it with :func:`current_job`. It is safe to use from any thread.
    """

    __slots__ = (
        "_bridge",
        "_cancel_callbacks",
        "_cancel_reason",
        "_cancelled",
        "_lock",
        "_progress_callback",
        "_stop_event",
        "attempt",
        "job_id",
        "task_id",
        "task_name",
    )

    def __init__(
        self,
        *,
        job_id: str,
        task_id: str,
        task_name: str,
        attempt: int,
        bridge: MainLoopBridge | None,
        progress_callback: Callable[..., Any] | None,
    ) -> None:
        #: this run's id (a UUID string)
        self.job_id: str = job_id
        #: the id of the task this job is a run of
        self.task_id: str = task_id
        #: the task's name
        self.task_name: str = task_name
        #: 1 for the first try, 2 for the first retry, ...
        self.attempt: int = attempt
        self._stop_event: threading.Event | None = None
        self._cancelled = False
        self._bridge = bridge
        self._progress_callback = progress_callback
        self._lock = threading.Lock()
        self._cancel_callbacks: list[Callable[[], object]] = []
        self._cancel_reason: str | None = None

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, task_name={self.task_name!r})"

    @property
    def stop_event(self) -> threading.Event:
        """Set when the job is cancelled (request, timeout, task removal, shutdown)."""
        event = self._stop_event
        if event is None:  # created on first use: most jobs never need one
            with self._lock:
                event = self._stop_event
                if event is None:
                    event = self._stop_event = threading.Event()
                    if self._cancelled:
                        event.set()
        return event

    @property
    def cancelled(self) -> bool:
        """``True`` once cancellation of this job was requested."""
        return self._cancelled

    @property
    def cancel_reason(self) -> str | None:
        """Why the job was cancelled, or ``None`` if it was not."""
        return self._cancel_reason

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~quiv.JobCancelledError` if cancellation was requested."""
        if self._cancelled:
            raise JobCancelledError(self._cancel_reason or "job cancelled")

    def progress(self, **payload: Any) -> None:
        """Send *payload* to the task's ``progress_callback`` on the main loop.

        Never blocks; calls are delivered in order. Without a progress callback
        it does nothing.
        """
        callback = self._progress_callback
        if callback is not None and self._bridge is not None:
            self._bridge.submit(callback, (), payload, what="progress callback")

    # -- internal --------------------------------------------------------------

    def _cancel(self, reason: str) -> bool:
        """Request cancellation; return ``False`` if it was already requested."""
        with self._lock:
            if self._cancelled:
                return False
            self._cancel_reason = reason
            self._cancelled = True
            if self._stop_event is not None:
                self._stop_event.set()
            callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            callback()
        return True

    def _on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call *callback* (from the cancelling thread) when the job is cancelled.

        If it already was, call it now. Return a function that unregisters it.
        """
        with self._lock:
            if not self._cancelled:
                self._cancel_callbacks.append(callback)
                return lambda: self._discard_callback(callback)
        callback()
        return lambda: None

    def _discard_callback(self, callback: Callable[[], object]) -> None:
        with self._lock:
            try:
                self._cancel_callbacks.remove(callback)
            except ValueError:
                pass


def current_job() -> JobContext | None:
    """Return the context of the job running this code, or ``None`` outside a job.

    Works at any call depth inside sync and async handlers, and in threads
    started with the job's :mod:`contextvars` context
    (``contextvars.copy_context().run``).
    """
    return _current.get()
