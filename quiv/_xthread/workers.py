"""The pool: due jobs go in, worker threads run them, their notices come back.

:class:`WorkerPool` owns the ready queue, quiv's daemon worker threads and
the inbox their start and end notices come back through. The engine submits
jobs and receives the notices in batches on its loop; it never touches a
thread itself.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from .._core.records import JobRun
from .pool import STUCK, Inbox, ReadyQueue, WorkerNeed
from .runner import PROGRESS, Outcome, work
from .threads import WorkerThreads

__all__ = ("Reports", "WorkerPool")

#: the engine's handler of a batch of notices: ``(job, None)`` when a handler
#: starts, ``(job, outcome)`` when it ended, ``(job id, PROGRESS)`` when a job's
#: progress changed
Reports = Callable[[list[tuple[JobRun | str, Outcome | None]]], None]


class WorkerPool:
    """Up to *pool_size* worker threads running the due jobs, earliest first."""

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self._ready = ReadyQueue(pool_size)
        self._threads = WorkerThreads()
        self._inbox: Inbox | None = None
        self._task_group: TaskGroup | None = None
        self._backend = "asyncio"
        self._recheck_pending = False
        self._closed = False
        self._worker_scopes: set[anyio.CancelScope] = set()

    async def start(self, task_group: TaskGroup, backend: str, on_reports: Reports) -> None:
        """Start taking notices in *task_group* (on the scheduler's loop).

        :param backend: the event loop async handlers run on in worker threads
        """
        self._task_group = task_group
        self._backend = backend
        self._inbox = Inbox(anyio.lowlevel.current_token(), on_reports)
        await task_group.start(self._inbox.run)

    def notify_progress(self, job_id: str) -> None:
        """Any thread: the progress of job *job_id* changed (a ``(job_id, PROGRESS)`` notice)."""
        inbox = self._inbox
        if inbox is not None and not inbox.closed:
            try:
                inbox.put((job_id, PROGRESS))
            except Exception:  # the loop is gone (shutdown): nobody reads progress any more
                pass

    def submit(self, run: JobRun) -> None:
        """Queue *run* for the next free worker (adding a worker if it needs one)."""
        self._start_workers(self._ready.push(run))

    def _start_workers(self, need: WorkerNeed) -> None:
        assert self._task_group is not None
        if need is WorkerNeed.START_ONE:
            self._task_group.start_soon(self._worker, name="quiv worker")
            need = self._ready.check()  # more may be queued than one worker takes
        if need is WorkerNeed.ASK_AGAIN and not self._recheck_pending:
            self._recheck_pending = True
            self._task_group.start_soon(self._recheck, name="quiv worker check")

    async def _recheck(self) -> None:
        """A moment later: start a worker if the running ones are stuck in handlers."""
        await anyio.sleep(STUCK)
        self._recheck_pending = False
        if not self._closed:
            self._start_workers(self._ready.check())

    async def _worker(self) -> None:
        """Run one pool worker thread until the ready queue is empty.

        The ready queue starts at most ``pool_size`` of these. Shielded: only
        :meth:`abandon` may stop waiting for the thread, a daemon thread that
        then cannot delay the interpreter's exit.
        """
        assert self._inbox is not None
        with anyio.CancelScope(shield=True) as scope:
            self._worker_scopes.add(scope)
            try:
                await self._threads.run_sync(work, self._ready, self._inbox.put, self._backend)
            finally:
                self._worker_scopes.discard(scope)

    def close(self) -> None:
        """Start no more jobs; each thread exits once its handler returns (shutdown)."""
        self._closed = True
        self._ready.close()
        self._threads.close()

    def abandon(self) -> None:
        """Stop waiting for the threads still in handlers, and for notices."""
        for scope in self._worker_scopes:
            scope.cancel()
        if self._inbox is not None:
            self._inbox.stop()
