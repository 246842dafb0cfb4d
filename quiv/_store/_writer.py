"""The write queue: coalescing pending rows, one writer, flush barriers, retries.

``put_*`` record the newest state of a row in a dict keyed by id (a job put
three times before the writer runs is written once, last state wins) and wake
the writer. Every :data:`COALESCE_SECONDS` the writer hands ``write_batch``
(one transaction) the final states and the records with no job in flight
(ended jobs, deleted tasks, tasks waiting for their next run) and the live
records queued more than about :data:`SETTLE_SECONDS` ago; a younger record
in flight (a job, or a task with a job in flight) waits, because the job
will likely end soon and then cost one row instead of two (under a burst of
short jobs this halves the writing). A job still queued (not started), and
its task, are kept apart and wait past that too: the job until it starts,
its task until the job ends (neither is looked at when the settle time
passes, so a queue of 500,000 costs nothing then). A burst would otherwise
have each job written twice, once queued and once ended, while the queue
drains (:attr:`BatchWriter.queued_rows` turns this off for host
mode, where other processes read the file). Any read flushes everything at once, so reads never miss a
write. On failure the rows go back into the queue under any newer ones,
the error is logged, and the writer retries with a doubling backoff; a
:meth:`BatchWriter.flush` during a failure asks for an immediate retry and
raises :class:`~quiv.StoreError` if the attempt that covered its writes failed,
so it never hangs.

Every method runs on the scheduler's loop; the anyio events here never cross
threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus

from .._errors import StoreError
from .._models import Job, Task
from .._typing import Logger
from ._base import Live

__all__ = (
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "COALESCE_SECONDS",
    "LOG_EVERY",
    "SETTLE_SECONDS",
    "BatchWriter",
    "WriteBatch",
)

#: how long the writer waits for more rows before writing a batch (a flush,
#: i.e. any read, cuts it short)
COALESCE_SECONDS = 0.02
#: how long a live (still changing) record may wait for its final state before
#: it is written anyway
SETTLE_SECONDS = 0.5
#: first retry delay after a failed batch, in seconds (doubles up to BACKOFF_MAX)
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
#: while writes keep failing, the same error is logged again after this many seconds
LOG_EVERY = 60.0

#: ``write_batch(tasks, jobs)``: tasks map id -> Task, or None for a deletion
TaskRows = dict[str, "Task | Live[Task] | None"]
JobRows = dict[str, "Job | Live[Job]"]
WriteBatch = Callable[[TaskRows, JobRows], Awaitable[None]]
R = TypeVar("R", TaskRows, JobRows)


class BatchWriter:
    """Queue rows and write them in batches through *write_batch*.

    :param write_batch: writes one batch in one transaction, raising on failure
    :param logger: where failures and recoveries are reported
    """

    def __init__(self, write_batch: WriteBatch, logger: Logger) -> None:
        self._write_batch = write_batch
        self._logger = logger
        #: rows for the next batch: final states, and records with no job in flight
        self._tasks: TaskRows = {}
        self._jobs: JobRows = {}
        #: rows that may still change (see :data:`SETTLE_SECONDS`), and
        #: ``time.monotonic()`` when the oldest of them was queued
        self._held_tasks: TaskRows = {}
        self._held_jobs: JobRows = {}
        self._held_since = 0.0
        #: rows of jobs still queued (not started), and of their tasks: they wait
        #: for the job to start (or end), whatever the settle time
        self._waiting_tasks: TaskRows = {}
        self._waiting_jobs: JobRows = {}
        #: ids of queued tasks whose rows were never written
        self._unwritten: set[str] = set()
        self._in_flight = 0
        #: write the rows of queued (not started) jobs once they settle, like
        #: running ones (host mode: other processes see the file), rather than
        #: holding them until the job starts
        self.queued_rows = False
        # every put gets a sequence number; flush waits for _committed >= its number
        self._seq = 0
        self._committed = 0
        self._last_attempt = 0  # the sequence number the last finished attempt covered
        self._failure: BaseException | None = None
        self._failures = 0  # consecutive failed attempts
        self._logged_at = 0.0
        self._wake = anyio.Event()  # rows were queued
        self._retry = anyio.Event()  # a flush wants a retry now
        self._attempted = anyio.Event()  # replaced after every attempt
        self.running = False

    # -- queueing ---------------------------------------------------------

    def put_task(self, task: Task | Live[Task], *, new: bool = False) -> None:
        """Queue *task*'s row (replacing any queued state of it).

        :param new: the row was never written; deleting the task before the
            next batch then leaves nothing to write at all
        """
        if _task_due(task):
            self._held_tasks.pop(task.id, None)
            self._waiting_tasks.pop(task.id, None)
            self._tasks[task.id] = task
        else:
            self._tasks.pop(task.id, None)
            self._live_row(task, self._held_tasks, self._waiting_tasks)
        if new:
            self._unwritten.add(task.id)
        self._queued()

    def delete_task(self, task_id: str) -> None:
        """Queue the deletion of a task's row (replacing any queued state of it)."""
        if task_id in self._unwritten:  # a run-once task that came and went
            self._unwritten.discard(task_id)
            self._tasks.pop(task_id, None)
            self._held_tasks.pop(task_id, None)
            self._waiting_tasks.pop(task_id, None)
            return
        self._held_tasks.pop(task_id, None)
        self._waiting_tasks.pop(task_id, None)
        self._tasks[task_id] = None
        self._queued()

    def put_job(self, job: Job | Live[Job]) -> None:
        """Queue *job*'s row (replacing any queued state of it)."""
        if isinstance(job, Job):  # its final state
            self._held_jobs.pop(job.id, None)
            self._waiting_jobs.pop(job.id, None)
            self._jobs[job.id] = job
        else:
            self._live_row(job, self._held_jobs, self._waiting_jobs)
        self._queued()

    def _live_row(self, row: Any, held: dict[str, Any], waiting: dict[str, Any]) -> None:
        """File a live record: with the queued ones if its job has not started
        (and :attr:`queued_rows` is off), else with the held ones."""
        if not self.queued_rows and getattr(row, "queued", False):
            held.pop(row.id, None)
            waiting[row.id] = row
        else:
            waiting.pop(row.id, None)
            self._hold(held)[row.id] = row

    def _hold(self, rows: R) -> R:
        """*rows* (one of the held queues), noting the time if nothing was held."""
        if not (self._held_tasks or self._held_jobs):
            self._held_since = time.monotonic()
        return rows

    def _queued(self) -> None:
        self._seq += 1
        self._wake.set()

    @property
    def pending_writes(self) -> int:
        """Rows queued or being written, not yet committed."""
        return self._queued_count() + self._in_flight

    def _queued_count(self) -> int:
        held = len(self._held_tasks) + len(self._held_jobs)
        return len(self._tasks) + len(self._jobs) + held + self._waiting_count()

    def _waiting_count(self) -> int:
        return len(self._waiting_tasks) + len(self._waiting_jobs)

    def _queued_any(self) -> bool:
        return bool(
            self._tasks
            or self._jobs
            or self._held_tasks
            or self._held_jobs
            or self._waiting_count()
        )

    @property
    def failure(self) -> BaseException | None:
        """The error of the last attempt, while the writer is failing."""
        return self._failure

    # -- the writer task -----------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled (start this with ``await task_group.start``)."""
        self.running = True
        backoff = 0.0
        try:
            task_status.started()
            while True:
                if backoff:
                    with anyio.move_on_after(backoff):
                        await self._retry.wait()
                while not self._queued_any():
                    await self._wake.wait()
                    self._wake = anyio.Event()
                # Let more rows join this batch for a moment, unless a flush (a
                # read) is waiting: fewer, larger transactions, and fewer trips
                # to the database thread competing with the scheduler's loop.
                with anyio.move_on_after(COALESCE_SECONDS):
                    await self._retry.wait()
                ok = await self._write(everything=self._retry.is_set())
                backoff = 0.0 if ok else min(max(backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        finally:
            self.running = False
            self._notify_attempt()

    async def write_now(self) -> bool:
        """Write everything queued in one batch; return whether it was committed."""
        return await self._write(everything=True)

    def _take(self, everything: bool) -> tuple[TaskRows, JobRows, bool]:
        """The rows of the next batch, and whether that is every queued row."""
        tasks, jobs = self._tasks, self._jobs
        self._tasks, self._jobs = {}, {}
        if everything or time.monotonic() - self._held_since >= SETTLE_SECONDS:
            # held rows are disjoint from the others: merging loses nothing
            tasks = _merged(tasks, self._held_tasks)
            jobs = _merged(jobs, self._held_jobs)
            self._held_tasks, self._held_jobs = {}, {}
        if everything and self._waiting_count():
            tasks = _merged(tasks, self._waiting_tasks)
            jobs = _merged(jobs, self._waiting_jobs)
            self._waiting_tasks, self._waiting_jobs = {}, {}
        if self._unwritten:  # from now on, deleting these tasks must reach the database
            self._unwritten.difference_update(tasks)
            if not self._unwritten:
                self._unwritten = set()  # a set never shrinks; this one may have been large
        return tasks, jobs, not (self._held_tasks or self._held_jobs or self._waiting_count())

    async def _write(self, *, everything: bool) -> bool:
        covered = self._seq
        tasks, jobs, complete = self._take(everything)
        if not (tasks or jobs):
            return True
        self._retry = anyio.Event()
        self._in_flight = len(tasks) + len(jobs)
        try:
            await self._write_batch(tasks, jobs)
        except Exception as exc:
            self._requeue(tasks, jobs)
            self._failed(exc)
            return False
        except BaseException:
            self._requeue(tasks, jobs)
            raise
        finally:
            self._in_flight = 0
            if complete:  # a flush waits for an attempt that covered its rows
                self._last_attempt = covered
            self._notify_attempt()
        if complete:
            self._committed = covered
        if self._failure is not None:
            self._logger.warning(
                "quiv store: writing works again after %d failed attempts", self._failures
            )
        self._failure = None
        self._failures = 0
        return True

    def _requeue(self, tasks: TaskRows, jobs: JobRows) -> None:
        # rows queued meanwhile are newer: they win
        for task_id, task in tasks.items():
            if task_id not in self._held_tasks and task_id not in self._waiting_tasks:
                self._tasks.setdefault(task_id, task)
        for job_id, job in jobs.items():
            if job_id not in self._held_jobs and job_id not in self._waiting_jobs:
                self._jobs.setdefault(job_id, job)

    def _failed(self, exc: Exception) -> None:
        first = self._failure is None
        # a long outage logs its first error, then a reminder a minute (or a new error)
        now = time.monotonic()
        loud = first or str(exc) != str(self._failure) or now - self._logged_at >= LOG_EVERY
        self._failure = exc
        self._failures += 1
        if loud:
            self._logged_at = now
        self._logger.log(
            logging.ERROR if loud else logging.DEBUG,
            "quiv store: writing %d records failed (attempt %d); they stay queued and"
            " are retried: %s",
            self._queued_count(),
            self._failures,
            exc,
            exc_info=exc if first else None,
        )

    def _notify_attempt(self) -> None:
        done, self._attempted = self._attempted, anyio.Event()
        done.set()

    # -- barriers --------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every row queued before the call is committed.

        While the writer is failing this triggers an immediate retry instead
        of waiting for the backoff.

        :raises StoreError: if the attempt covering these rows failed, or the
            writer is not running
        """
        target = self._seq
        while self._committed < target:
            if not self._queued_any() and not self._in_flight:
                # every row queued before the call was written or dropped (a
                # task deleted before its row was written leaves nothing to write)
                self._committed = target
                return
            if not self.running:
                raise StoreError(
                    f"the job store's writer is not running; {self.pending_writes}"
                    " records are not written"
                )
            attempted = self._attempted
            self._retry.set()  # write now (or retry now, while failing)
            await attempted.wait()
            if self._committed < target and self._last_attempt >= target:
                failure = self._failure
                raise StoreError(
                    f"the job store cannot write ({self.pending_writes} records queued,"
                    f" retrying in the background): {failure}"
                ) from failure


def _task_due(task: Task | Live[Task]) -> bool:
    return isinstance(task, Task) or not task.in_flight


def _merged(rows: R, more: R) -> R:
    """*rows* and *more* in one dict (without copying when *rows* is empty)."""
    if not rows:
        return more
    rows.update(more)
    return rows
