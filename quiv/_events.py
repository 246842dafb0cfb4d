"""Lifecycle events and the listener registry."""

from __future__ import annotations

from enum import Enum

__all__ = ("Event",)


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
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_RETRYING = "job_retrying"

    def __str__(self) -> str:
        return self.value

    @property
    def is_job_event(self) -> bool:
        """``True`` for the ``JOB_*`` events (callbacks get the job too)."""
        return self.value.startswith("job_")
