"""The job context: what code running inside a job can find without parameters.

One :class:`JobContext` exists per job run. It is set in a context variable in
the worker thread (sync handlers) or the worker loop (async handlers), so
helpers such as :func:`~quiv.run_on_main`, :func:`~quiv.run_subprocess` and
:class:`~quiv.JobLogFilter` find the job at any call depth.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from anyio.lowlevel import EventLoopToken

from ._errors import JobCancelledError
from ._xthread.loops import call_soon

if TYPE_CHECKING:
    from ._mainloop.bridge import MainLoopBridge
    from .abc import Clock

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

#: the keyword arguments of a progress delivery (the payload travels as one argument)
#: (a plain dict, which ``**`` unpacks fastest; nothing ever writes to it)
_NO_KWARGS: Mapping[str, Any] = {}

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
        "clock",
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
        clock: Clock | None = None,
    ) -> None:
        self._lock = threading.Lock()
        #: the scheduler's clock, for :meth:`JobContext.sleep`
        self.clock: Clock | None = clock
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
            self._deliver = deliver_progress(self, progress_callback)

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

    def sleep(self, seconds: float) -> None:
        """Sleep *seconds* on the scheduler's clock, in a sync handler; wake at once if cancelled.

        Real time with the loop's clock; under a :class:`quiv.testing.VirtualClock`
        it ends when the test moves virtual time past its end (a plain
        :func:`time.sleep` stays real time under any clock).

        :raises JobCancelledError: if the job is cancelled before or while it sleeps
        :raises ConfigurationError: if *seconds* is not a number >= 0
        """
        from ._job_sleep import sleep_blocking

        sleep_blocking(self._control, self.job_id, seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Sleep *seconds* on the scheduler's clock, in an async handler.

        The async form of :meth:`sleep` (a cancel of the job cancels it, as
        it cancels any await of the handler).

        :raises JobCancelledError: if the job was cancelled before it slept
        :raises ConfigurationError: if *seconds* is not a number >= 0
        """
        from ._job_sleep import sleep_async

        await sleep_async(self._control, self.job_id, seconds)

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
            bridge.submit(deliver, (payload,), _NO_KWARGS, what="progress callback")


def deliver_progress(job: JobContext, callback: Callable[..., Any]) -> Callable[..., Any]:
    """The function the main loop calls with a progress payload of *job* for *callback*.

    It calls *callback* with the payload, *job* being :func:`current_job`
    meanwhile (also across the awaits of an ``async def`` callback), plus
    ``_job_id=`` if the callback declares it. Made once per job: the main
    loop pays one context variable switch per payload, nothing more.
    """
    wants, is_async = _inspect_callback(callback)
    job_id = job.job_id
    current = _current
    deliver: Callable[..., Any]
    if is_async:

        async def deliver_async(payload: dict[str, Any]) -> Any:
            token = current.set(job)
            try:
                if wants:
                    return await callback(**payload, _job_id=job_id)
                return await callback(**payload)
            finally:
                current.reset(token)

        deliver = deliver_async
    else:
        # A sync callback runs start to end on the main loop's thread, inside
        # the bridge's drain: a plain slot (read by current_job() on that
        # thread only) costs far less per payload than a context variable.
        # Nested deliveries (a callback that drains the bridge) restore it.
        main_thread = threading.get_ident

        def deliver_sync(payload: dict[str, Any]) -> Any:
            previous = _delivering[1]  # (a nested delivery is on the same thread)
            _delivering[0] = main_thread()
            _delivering[1] = job
            try:
                if wants:
                    return callback(**payload, _job_id=job_id)
                return callback(**payload)
            finally:
                _delivering[1] = previous

        deliver = deliver_sync
    deliver.__dict__["quiv_callback"] = callback  # logs name the callback, not this
    return deliver


_inspected: dict[int, tuple[Callable[..., Any], bool, bool]] = {}


def _inspect_callback(callback: Callable[..., Any]) -> tuple[bool, bool]:
    """``(declares _job_id, is async)`` for *callback*, remembered per callback."""
    key = id(callback)
    known = _inspected.get(key)
    if known is not None and known[0] is callback:
        return known[1], known[2]
    from ._core.handlers import is_async_callable

    wants = wants_job_id(callback)
    is_async = is_async_callable(callback)
    if len(_inspected) >= 256:
        _inspected.clear()
    _inspected[key] = (callback, wants, is_async)
    return wants, is_async


def wants_job_id(callback: Callable[..., Any]) -> bool:
    """Whether *callback* declares a ``_job_id`` parameter."""
    try:
        parameters = inspect.signature(callback).parameters
    except (TypeError, ValueError):  # no signature to read: pass the payload only
        return False
    param = parameters.get("_job_id")
    return param is not None and param.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def control_of(job: JobContext) -> JobControl:
    """The shared state behind *job* (for quiv's own modules)."""
    return job._control


def set_current(job: JobContext | None) -> Token[JobContext | None]:
    """Make *job* the current job of this context (worker side); reset with the token."""
    return _current.set(job)


def reset_current(token: Token[JobContext | None]) -> None:
    _current.reset(token)


#: ``[thread id, job]`` while a sync progress callback of *job* runs on that thread
_delivering: list[Any] = [None, None]


def current_job() -> JobContext | None:
    """Return the context of the job running this code, or ``None`` outside a job.

    Works at any call depth inside sync and async handlers, and in threads
    started with the job's :mod:`contextvars` context
    (``contextvars.copy_context().run``), and in a task's
    ``progress_callback`` (the job that sent the payload).
    """
    job = _current.get()
    if job is None and _delivering[1] is not None and _delivering[0] == threading.get_ident():
        return _delivering[1]  # type: ignore[no-any-return]
    return job
