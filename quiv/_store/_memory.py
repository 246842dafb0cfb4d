"""MemoryStore: the same records and queries as SQLiteStore, in dicts, with no I/O."""

from __future__ import annotations

import logging
import math
from datetime import datetime

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._errors import StoreError
from .._models import Job, Task
from .._states import NEW, RUNNING, STOPPED
from .._typing import Logger
from ._base import JobQuery, Live, Store, job_record, task_record
from ._records import normalize_job, stored_task, to_micros, to_utc
from ._retention import check_retention, cutoff_micros, prune_interval
from ._schema import FINAL_STATUSES, check_query

__all__ = ("MemoryStore",)


class MemoryStore(Store):
    """Task and job records in memory: nothing touches the disk.

    Same semantics as :class:`~quiv._store.SQLiteStore` (normalised UTC
    datetimes, tasks read back without their arguments, the same
    ordering, filters and pruning), but every write is applied at once, so
    :attr:`pending_writes` is always ``0`` and :meth:`flush` never fails.
    History is gone when the process ends.

    :param history_retention_seconds: how long finished jobs are kept
        (``0``: until the next pruning pass; ``inf``: forever)
    :param logger: where pruning is reported (default ``quiv``)
    :raises ConfigurationError: if the retention is not a number >= 0
    """

    def __init__(
        self, *, history_retention_seconds: float = 86400, logger: Logger | None = None
    ) -> None:
        self._retention = check_retention(history_retention_seconds)
        self._logger: Logger = logger if logger is not None else logging.getLogger("quiv")
        self._tasks: dict[str, Task] = {}
        self._jobs: dict[str, Job] = {}
        self._state = NEW  # -> running (open) -> stopped
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    async def start(self, task_group: TaskGroup) -> None:
        """Start the pruning task in *task_group*.

        :raises StoreError: if the store was started already
        """
        if self._state is not NEW:
            raise StoreError("the job store was started already")
        self._state = RUNNING
        await task_group.start(self._background)

    async def _background(self, *, task_status: TaskStatus[None]) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                task_status.started()
                if math.isinf(self._retention):
                    return
                interval = prune_interval(self._retention)
                while self._state is RUNNING:
                    deleted = await self.prune()
                    if deleted:
                        self._logger.debug("quiv store: pruned %d finished jobs", deleted)
                    await anyio.sleep(interval)
        finally:
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop pruning and drop every record. A second call does nothing."""
        started, self._state = self._state is RUNNING, STOPPED
        if started:
            if self._scope is not None:
                self._scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()
        self._tasks.clear()
        self._jobs.clear()

    def _writable(self, kind: str, record_id: str) -> bool:
        # puts are fire-and-forget: a late one (an abandoned job ending after
        # shutdown) must not raise into the engine; it is reported and dropped
        if self._state is not STOPPED:
            return True
        self._logger.warning("quiv store: closed, not recording %s %r", kind, record_id)
        return False

    def put_task(self, task: Task | Live[Task], *, new: bool = False) -> None:
        """Store *task*'s record without its arguments (like SQLiteStore, which never writes them).

        After :meth:`aclose` the row is dropped with a warning.
        """
        if not self._writable("task", task.id):
            return
        try:
            self._tasks[task.id] = stored_task(task_record(task))
        except Exception:
            # like SQLiteStore: a record that cannot be stored is reported, never raised
            self._logger.exception("quiv store: dropping Task %r, it cannot be stored", task.id)

    def delete_task(self, task_id: str) -> None:
        """Forget a task (its job history stays).

        After :meth:`aclose` the deletion is dropped with a warning.
        """
        if self._writable("task deletion", task_id):
            self._tasks.pop(task_id, None)

    def put_job(self, job: Job | Live[Job]) -> None:
        """Store *job*, normalised as SQLiteStore would read it back.

        After :meth:`aclose` the row is dropped with a warning.
        """
        if not self._writable("job", job.id):
            return
        try:
            self._jobs[job.id] = normalize_job(job_record(job))
        except Exception:
            # like SQLiteStore: a record that cannot be stored is reported, never raised
            self._logger.exception("quiv store: dropping Job %r, it cannot be stored", job.id)

    @property
    def pending_writes(self) -> int:
        """Always ``0``: writes apply at once."""
        return 0

    async def flush(self) -> None:
        """Return at once (after a checkpoint): nothing is ever queued.

        :raises StoreError: if the store is not open
        """
        if self._state is not RUNNING:
            raise StoreError("the job store is not open")
        await anyio.lowlevel.checkpoint()

    async def get_job(self, job_id: str) -> Job | None:
        """Return the job with this id, or ``None``.

        :raises StoreError: if the store is not open
        """
        await self.flush()
        return self._jobs.get(job_id)

    async def get_jobs(self, query: JobQuery) -> list[Job]:
        """Return the jobs matching *query*, ordered like SQLiteStore orders them.

        :raises ConfigurationError: if the query holds invalid values
        :raises StoreError: if the store is not open
        """
        column, status, limit, offset = check_query(query)
        await self.flush()
        since = None if query.since is None else to_utc(query.since)
        until = None if query.until is None else to_utc(query.until)
        dated: list[tuple[datetime, int, Job]] = []
        undated: list[tuple[int, Job]] = []
        for index, job in enumerate(self._jobs.values()):
            if status is not None and job.status.value != status:
                continue
            if query.task_id is not None and job.task_id != query.task_id:
                continue
            started = job.started_at
            if since is not None and (started is None or started < since):
                continue
            if until is not None and (started is None or started >= until):
                continue
            key: datetime | None = getattr(job, column)
            if key is None:
                undated.append((index, job))
            else:
                dated.append((key, index, job))
        dated.sort(key=lambda item: (item[0], item[1]), reverse=query.descending)
        undated.sort(key=lambda item: item[0], reverse=query.descending)
        ordered = [job for _, _, job in dated] + [job for _, job in undated]
        end = None if limit < 0 else offset + limit
        return ordered[offset:end]

    async def count_jobs(self) -> int:
        """Return how many job records the store holds.

        :raises StoreError: if the store is not open
        """
        await self.flush()
        return len(self._jobs)

    async def get_tasks(self) -> list[Task]:
        """Return the stored tasks (empty arguments), in insertion order.

        :raises StoreError: if the store is not open
        """
        await self.flush()
        return list(self._tasks.values())

    async def prune(self, now: datetime | None = None) -> int:
        """Delete finished jobs that ended more than the retention before *now*.

        :param now: the reference time (default: the current UTC time)
        :returns: how many job records were deleted
        :raises StoreError: if the store is not open
        """
        await self.flush()
        cutoff = cutoff_micros(self._retention, now)
        if cutoff is None:
            return 0
        expired = [
            job.id
            for job in self._jobs.values()
            if job.status.value in FINAL_STATUSES
            and job.ended_at is not None
            and (to_micros(job.ended_at) or 0) < cutoff
        ]
        for job_id in expired:
            del self._jobs[job_id]
        return len(expired)
