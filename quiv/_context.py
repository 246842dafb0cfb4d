"""The job context: what code running inside a job can find without parameters.

One :class:`JobContext` exists per job run. It is set in a context variable in
the worker thread (sync handlers) or the worker loop (async handlers), so
helpers such as :func:`~quiv.run_on_main`, :func:`~quiv.run_subprocess` and
:class:`~quiv.JobLogFilter` find the job at any call depth.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from anyio.lowlevel import EventLoopToken

from ._errors import JobCancelledError
from ._xthread.loops import call_soon

if TYPE_CHECKING:
    from ._mainloop.bridge import MainLoopBridge

__all__ = (
    "JobContext",
    "JobControl",
    "control_of",
    "current_job",
    "deliver_progress",
    "reset_current",
    "set_current",
    "wants_job_id",
)

_current: ContextVar[JobContext | None] = ContextVar("quiv_current_job", default=None)


class JobControl:
    """The part of a job that threads share: its cancellation and its start.

    The scheduler's loop cancels; the worker thread starts the handler; any
    thread may ask. One lock makes "cancelled before it started" and
    "started" exclusive, so a job cancelled while queued never calls its
    handler. Everything else about a job is written by one side only: the
    loop's :class:`~quiv._core.records.JobRun`, the worker's outcome.
    """

    __slots__ = (
        "_lock",
        "bridge",
        "callbacks",
        "cancel_reason",
        "cancelled",
        "notify",
        "progress",
        "progress_pending",
        "started",
        "started_at",
        "stop_event",
        "worker",
    )

    def __init__(
        self,
        bridge: MainLoopBridge | None,
        notify: Callable[[str], object] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        #: the main loop of the job's scheduler
        self.bridge: MainLoopBridge | None = bridge
        #: any thread: tell the scheduler's loop that the job's progress changed
        #: (called with the job id, once until the loop has recorded it)
        self.notify: Callable[[str], object] | None = notify
        #: the last progress payload (written by whichever thread reports; one
        #: assignment, so a reader sees an old payload or the new one)
        self.progress: dict[str, Any] | None = None
        #: a notice of new progress is on its way to the loop (see ``JobContext.progress``)
        self.progress_pending: bool = False
        self.cancelled: bool = False
        self.cancel_reason: str | None = None
        #: set on cancel; created on first use (most jobs never need one)
        self.stop_event: threading.Event | None = None
        self.callbacks: list[Callable[[], object]] = []
        #: written once, by the worker thread, under the lock (see :meth:`begin`)
        self.started: bool = False
        self.started_at: datetime | None = None
        #: the worker loop running an async handler, and the scope to cancel
        self.worker: tuple[EventLoopToken, Any] | None = None

    def get_stop_event(self) -> threading.Event:
        """The job's stop event (set if the job is cancelled already)."""
        event = self.stop_event
        if event is None:
            with self._lock:
                event = self.stop_event
                if event is None:
                    event = self.stop_event = threading.Event()
                    if self.cancelled:
                        event.set()
        return event

    def begin(self) -> bool:
        """Worker thread: mark the handler started, unless the job was cancelled first."""
        with self._lock:
            if self.cancelled:
                return False
            self.started = True
            self.started_at = datetime.now(timezone.utc)
            return True

    def cancel(self, reason: str) -> bool:
        """Request cancellation; return ``False`` if it was already requested.

        Sets the stop event, cancels the worker loop's scope of an async
        handler, and calls the registered callbacks.
        """
        with self._lock:
            if self.cancelled:
                return False
            self.cancel_reason = reason
            self.cancelled = True
            if self.stop_event is not None:
                self.stop_event.set()
            callbacks, self.callbacks = self.callbacks, []
            worker = self.worker
        if worker is not None:
            token, scope = worker
            call_soon(token, scope.cancel)
        for callback in callbacks:
            callback()
        return True

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call *callback* (from the cancelling thread) when the job is cancelled.

        If it already was, call it now. Return a function that unregisters it.
        """
        with self._lock:
            if not self.cancelled:
                self.callbacks.append(callback)
                return lambda: self._discard(callback)
        callback()
        return lambda: None

    def _discard(self, callback: Callable[[], object]) -> None:
        with self._lock:
            try:
                self.callbacks.remove(callback)
            except ValueError:
                pass

    def attach_worker(self, token: EventLoopToken, scope: Any) -> None:
        """Worker loop: a cancel of the job must cancel *scope* (an anyio CancelScope)."""
        with self._lock:
            if self.cancelled:
                scope.cancel()
            else:
                self.worker = (token, scope)

    def detach_worker(self) -> None:
        """Worker loop: the async handler has ended; its scope needs no more cancelling."""
        with self._lock:
            self.worker = None


class JobContext:
    """What a running job knows about itself.

    Obtain it with :func:`current_job`. It is safe to use from any thread.
    """

    __slots__ = (
        "_control",
        "_deliver",
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
        control: JobControl,
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
        self._control = control
        #: the progress callback, called with this job current (see :func:`deliver_progress`)
        self._deliver: Callable[..., Any] | None = None
        if progress_callback is not None:
            deliver = functools.partial(deliver_progress, self, progress_callback)
            deliver.quiv_callback = progress_callback  # type: ignore[attr-defined]  # for logs
            self._deliver = deliver

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, task_name={self.task_name!r})"

    @property
    def stop_event(self) -> threading.Event:
        """Set when the job is cancelled (request, timeout, task removal, shutdown)."""
        return self._control.get_stop_event()

    @property
    def cancelled(self) -> bool:
        """``True`` once cancellation of this job was requested."""
        return self._control.cancelled

    @property
    def cancel_reason(self) -> str | None:
        """Why the job was cancelled, or ``None`` if it was not."""
        return self._control.cancel_reason

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~quiv.JobCancelledError` if cancellation was requested."""
        control = self._control
        if control.cancelled:
            raise JobCancelledError(control.cancel_reason or "job cancelled")

    def progress(self, **payload: Any) -> None:
        """Keep *payload* as the job's :attr:`~quiv.Job.progress`, and send it to
        the task's ``progress_callback`` on the main loop.

        Never blocks; calls are delivered in order, and inside the callback
        :func:`current_job` is this job. Readers of the job (``get_job``)
        see the last payload within the store's batching delay, with or
        without a callback.
        """
        control = self._control
        control.progress = payload
        # The loop clears the flag before it reads the payload, so a payload
        # written after that read finds the flag clear and sends a new notice.
        if not control.progress_pending:
            control.progress_pending = True
            notify = control.notify
            if notify is not None:
                notify(self.job_id)
        deliver = self._deliver
        bridge = control.bridge
        if deliver is not None and bridge is not None:
            bridge.submit(deliver, (), payload, what="progress callback")


def deliver_progress(job: JobContext, callback: Callable[..., Any], **payload: Any) -> Any:
    """Main loop: call a progress *callback* with *payload*, *job* being the current job.

    A callback that declares ``_job_id`` gets the job's id too. An async
    callback's coroutine runs with *job* current as well.
    """
    if wants_job_id(callback):
        payload = {**payload, "_job_id": job.job_id}
    token = _current.set(job)
    try:
        result = callback(**payload)
    finally:
        _current.reset(token)
    if inspect.isawaitable(result):
        return _await_as(job, result)
    return result


async def _await_as(job: JobContext, awaitable: Awaitable[Any]) -> Any:
    token = _current.set(job)
    try:
        return await awaitable
    finally:
        _current.reset(token)


_wants_job_id: dict[int, tuple[Callable[..., Any], bool]] = {}


def wants_job_id(callback: Callable[..., Any]) -> bool:
    """Whether *callback* declares a ``_job_id`` parameter (remembered per callback)."""
    key = id(callback)
    known = _wants_job_id.get(key)
    if known is not None and known[0] is callback:
        return known[1]
    try:
        parameters = inspect.signature(callback).parameters
    except (TypeError, ValueError):  # no signature to read: pass the payload only
        wants = False
    else:
        param = parameters.get("_job_id")
        wants = param is not None and param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    if len(_wants_job_id) >= 256:
        _wants_job_id.clear()
    _wants_job_id[key] = (callback, wants)
    return wants


def control_of(job: JobContext) -> JobControl:
    """The shared state behind *job* (for quiv's own modules)."""
    return job._control


def set_current(job: JobContext | None) -> Token[JobContext | None]:
    """Make *job* the current job of this context (worker side); reset with the token."""
    return _current.set(job)


def reset_current(token: Token[JobContext | None]) -> None:
    _current.reset(token)


def current_job() -> JobContext | None:
    """Return the context of the job running this code, or ``None`` outside a job.

    Works at any call depth inside sync and async handlers, and in threads
    started with the job's :mod:`contextvars` context
    (``contextvars.copy_context().run``).
    """
    return _current.get()
