"""quiv's seams: the interfaces a clock, a trigger and a job store implement.

The scheduler talks to time, to schedules and to its records only through
these. quiv's own implementations are :class:`quiv.testing.FakeClock` and the
event loop's clock; the triggers in :mod:`quiv.triggers`; the SQLite and
in-memory stores. Implement one of these to plug in your own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable

from anyio.abc import TaskGroup

from ._models import Job, JobStatus, Task

__all__ = ("Clock", "JobQuery", "Live", "Store", "Trigger")


@runtime_checkable
class Clock(Protocol):
    """The scheduler's source of time. The timer never reads time any other way.

    Deadlines are seconds on the clock's own monotonic scale. A clock also
    says how its seconds relate to real time, so the scheduler never has to
    guess from the clock's type:

    - :attr:`lead`: how long before a deadline the timer may hand a job to
      a worker thread, which then waits out the rest itself on
      :func:`time.monotonic` (precise to about 0.1 ms, where event loops wake
      up to a millisecond or two late). Only a clock whose seconds pass with
      :func:`time.monotonic` can have a lead; any other clock has ``0.0``.
    - :attr:`real_time`: whether its seconds pass with :func:`time.monotonic`.
      A request made in another thread (the sync face's ``add_task``) then
      counts the time it took to arrive against its delay.
    - :meth:`wall_time`: the POSIX time that corresponds to :meth:`now`, for
      ``next_run_at`` and wall-clock schedules. For a real clock it is
      :func:`time.time` (which can jump: NTP steps, suspend); a test clock
      maps its own time onto a wall clock of its choosing.
    """

    @property
    def lead(self) -> float:
        """Seconds a worker may be handed a job ahead of its deadline (``0.0`` if none)."""
        ...

    @property
    def real_time(self) -> bool:
        """Whether the clock's seconds pass with :func:`time.monotonic`."""
        ...

    def now(self) -> float:
        """Return the current time in seconds on the clock's monotonic scale."""
        ...

    def wall_time(self) -> float:
        """Return the POSIX timestamp of :meth:`now`."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until :meth:`now` reaches *deadline* (cancellable; forever if infinite)."""
        ...


@runtime_checkable
class Trigger(Protocol):
    """When a task runs: a pure function from one fire to the next.

    ``next_fire`` is the one required method. It must not depend on anything
    but its argument and the trigger's own (immutable) settings, so that the
    scheduler may call it at any time, as often as it likes, and
    ``preview()`` has no side effects.
    """

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after *after*, or ``None`` when there are no more.

        :param after: a timezone-aware datetime (UTC)
        :return: a timezone-aware datetime strictly later than *after*
        """
        ...


R = TypeVar("R", Task, Job, covariant=True)


class Live(Protocol[R]):
    """A record kept up to date by the engine; a store snapshots it when it writes.

    Passing the live record instead of a snapshot lets a store that batches
    its writes build one snapshot per batch (the latest state) instead of one
    per change.
    """

    @property
    def id(self) -> str:
        """The record's id."""
        ...

    @property
    def in_flight(self) -> bool:
        """Whether the record is about to change again (a job, or a task with a job, in flight).

        A batching store may hold such a record back briefly for its newer
        state, and writes any other with its next batch.
        """
        ...

    def snapshot(self) -> R:
        """The record as it is now."""
        ...


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

    Writes never block: ``put_*`` and ``delete_task`` queue a change and
    return. Reads are coroutines that first wait for every write queued
    before them, so a read always sees earlier writes.

    Handler arguments are never stored, in any form.
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

        ``args`` comes back as ``()`` and ``kwargs`` as ``{}``: arguments are
        never stored. The engine answers task queries from memory, with the
        real arguments; this serves persistent stores and tests. Optional:
        the default raises :class:`NotImplementedError`.

        :raises StoreError: if the store cannot answer
        """
        raise NotImplementedError

    async def claim_fire(self, key: str, fire: datetime) -> bool:
        """Claim the fire *fire* of the keyed schedule *key*; ``False`` if it was claimed before.

        A claim and the schedule's new last fire (see :meth:`last_fires`) are
        one transaction, so of all the processes sharing the store, at most
        one ever gets ``True`` for one fire: a fire runs once. A store shared
        by several machines must keep that promise too (a PostgreSQL store
        would use a unique key on ``(key, fire)``). Optional: the default
        remembers nothing and claims every fire, which is right for a store
        no other process shares.

        :raises StoreError: if the store cannot answer
        """
        return True

    async def last_fires(self) -> dict[str, datetime]:
        """The last claimed fire of every keyed schedule the store knows (aware UTC).

        Optional: the default knows none.

        :raises StoreError: if the store cannot answer
        """
        return {}
