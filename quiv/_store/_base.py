"""The store seam's helpers. The interface itself is public: :class:`quiv.abc.Store`."""

from __future__ import annotations

from .._models import Job, Task
from ..abc import JobQuery, Live, Store

__all__ = ("JobQuery", "Live", "Store", "job_record", "task_record")


def task_record(task: Task | Live[Task]) -> Task:
    """*task* itself, or the snapshot of a live one."""
    return task if isinstance(task, Task) else task.snapshot()


def job_record(job: Job | Live[Job]) -> Job:
    """*job* itself, or the snapshot of a live one."""
    return job if isinstance(job, Job) else job.snapshot()
