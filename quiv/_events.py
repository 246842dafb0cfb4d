"""Lifecycle events and the listener registry."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, HandlerRegistrationError, MainLoopUnavailableError

if TYPE_CHECKING:
    from ._mainloop.bridge import MainLoopBridge
    from ._models import Job, Task

__all__ = ("Event", "Listeners")


class Event(str, Enum):
    """Lifecycle events a listener can subscribe to.

    Task events call ``callback(event, task)``; job events call
    ``callback(event, task, job)`` with the task as it is after the job.
    """

    TASK_ADDED = "task_added"
    TASK_REMOVED = "task_removed"
    TASK_PAUSED = "task_paused"
    TASK_RESUMED = "task_resumed"
    TASK_UPDATED = "task_updated"
    #: a wall-clock run came due later than the task's ``misfire_grace`` and was
    #: skipped (``Task.skipped_runs`` counts them)
    TASK_RUN_SKIPPED = "task_run_skipped"
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_RETRYING = "job_retrying"
    #: a running job's progress changed and its record shows the new payload
    #: (``job.progress``); reports that come faster than the main loop reads
    #: them arrive as one event with the latest payload
    JOB_PROGRESS = "job_progress"

    def __str__(self) -> str:
        return self.value

    @property
    def is_job_event(self) -> bool:
        """``True`` for the ``JOB_*`` events (callbacks get the job too)."""
        return self.value.startswith("job_")


class Listeners:
    """The listener registry. Emitting hands each call to the main-loop bridge."""

    def __init__(self) -> None:
        self._by_event: dict[Event, list[Callable[..., Any]]] = {event: [] for event in Event}

    def add(self, event: object, callback: object) -> None:
        """Register *callback* for *event*.

        :raises ConfigurationError: if *event* is not an :class:`Event` member
        :raises HandlerRegistrationError: if *callback* is not callable
        """
        if not isinstance(event, Event):
            raise ConfigurationError.bad_value("event", event, "an Event member")
        if not callable(callback):
            raise HandlerRegistrationError(f"callback must be callable, got {callback!r}")
        self._by_event[event].append(callback)

    def remove(self, event: object, callback: object) -> None:
        """Unregister *callback* (the same object) from *event*; unknown ones are ignored."""
        if not isinstance(event, Event):
            raise ConfigurationError.bad_value("event", event, "an Event member")
        callbacks = self._by_event[event]
        for index, registered in enumerate(callbacks):
            if registered is callback or registered == callback:
                del callbacks[index]
                return

    def wants(self, event: Event) -> bool:
        """Whether *event* has listeners (so building its payload is worth it)."""
        return bool(self._by_event[event])

    def emit(
        self, bridge: MainLoopBridge | None, event: Event, task: Task, job: Job | None = None
    ) -> None:
        """Queue every listener of *event* on the main loop (never blocks, never raises).

        Once the bridge is closed (the scheduler stopped, or the main loop
        ended, possibly while this runs) there is nowhere to deliver to: the
        calls are dropped.
        """
        callbacks = self._by_event[event]
        if not callbacks or bridge is None or bridge.closed:
            return
        args: tuple[Any, ...] = (event, task) if job is None else (event, task, job)
        what = f"listener for {event.value!r}"
        try:
            for callback in callbacks:
                bridge.submit(callback, args, {}, what=what)
        except MainLoopUnavailableError:
            return  # closed from another thread meanwhile
