"""The store seam: the engine talks to records only through :class:`Store`.

Writes are non-blocking (``put_*`` queue a row and return); a writer task
batches them into transactions. Reads are coroutines that first wait for
every write queued before them, so a read always sees earlier writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar

from anyio.abc import TaskGroup

from .._models import Job, JobStatus, Task

__all__ = ("JobQuery", "Live", "Store", "job_record", "task_record")

R = TypeVar("R", Task, Job, covariant=True)


class Live(Protocol[R]):
    """A record kept up to date by the engine; the store snapshots it when it writes.

    Passing the live record instead of a snapshot lets a store that batches
    its writes build one snapshot per batch (the latest state) instead of one
    per change.
    """

    @property
    def id(self) -> str: ...

    @property
    def settled(self) -> bool:
        """Whether the record will likely stay as it is for a while.

        A batching store writes a settled record with its next batch, and may
        hold an unsettled one back briefly for its newer state.
        """
        ...

    def snapshot(self) -> R: ...


def task_record(task: Task | Live[Task]) -> Task:
    """*task* itself, or the snapshot of a live one."""
    return task if isinstance(task, Task) else task.snapshot()


def job_record(job: Job | Live[Job]) -> Job:
    """*job* itself, or the snapshot of a live one."""
    return job if isinstance(job, Job) else job.snapshot()


OrderBy = Literal["started_at", "ended_at", "scheduled_at"]


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters for :meth:`Store.get_jobs` (already validated by the caller)."""

    status: JobStatus | None = None
    task_id: str | None = None
    #: inclusive lower bound on ``started_at``
    since: datetime | None = None
    #: exclusive upper bound on ``started_at``
    until: datetime | None = None
    order_by: OrderBy = "started_at"
    descending: bool = True
    limit: int | None = None
    offset: int = 0


class Store(ABC):
    """Where task and job records live.

    Lifecycle: :meth:`start` (inside the scheduler's task group, on the
    scheduler's loop), any number of writes and reads, then :meth:`aclose`,
    which writes everything still queued. All methods are called from the
    scheduler's loop only.
    """

    @abstractmethod
    async def start(self, task_group: TaskGroup) -> None:
        """Open the store and start its background work (writer, pruning) in *task_group*."""

    @abstractmethod
    async def aclose(self) -> None:
        """Write what is queued, stop background work and release every resource."""

    @abstractmethod
    def put_task(self, task: Task | Live[Task], *, new: bool = False) -> None:
        """Queue an insert-or-replace of *task*'s row (a live one is snapshotted when written).

        :param new: the task was never stored before; a store that queues
            writes may then drop both the row and a deletion that follows it
            before it was written
        """

    @abstractmethod
    def delete_task(self, task_id: str) -> None:
        """Queue the deletion of a task's row (its job history stays)."""

    @abstractmethod
    def put_job(self, job: Job | Live[Job]) -> None:
        """Queue an insert-or-replace of *job*'s row (a live one is snapshotted when written)."""

    @abstractmethod
    async def flush(self) -> None:
        """Return once every write queued before the call is committed.

        :raises StoreError: if the store cannot commit them
        """

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """Return the job with this id, or ``None``."""

    @abstractmethod
    async def get_jobs(self, query: JobQuery) -> list[Job]:
        """Return the jobs matching *query*."""

    @abstractmethod
    async def count_jobs(self) -> int:
        """Return how many job records the store holds."""

    @property
    @abstractmethod
    def pending_writes(self) -> int:
        """How many rows are queued and not yet committed."""

    async def get_tasks(self) -> list[Task]:
        """Return the stored task rows, in insertion order.

        Handler arguments are never stored, in any form: ``args`` comes back
        as ``()`` and ``kwargs`` as ``{}``. The engine answers task queries
        from memory, with the real arguments; this serves persistent stores
        and tests. Optional: the default raises ``NotImplementedError``.

        :raises StoreError: if the store cannot answer
        """
        raise NotImplementedError
