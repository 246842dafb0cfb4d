"""The ready queue shared by the scheduler loop and the pool's worker threads.

Jobs that are due wait here, ordered by due time. Up to ``pool_size`` worker
threads (quiv's own daemon threads, see :mod:`quiv._threads`) take jobs from
it one at a time until it is empty, so a burst of jobs costs one thread
hand-off per worker, not one per job. Finished and started notices flow back
through an :class:`Inbox`, which wakes the scheduler loop once per batch.
"""

from __future__ import annotations

import enum
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.lowlevel import EventLoopToken

from .._core.records import JobRun
from .mailbox import Mailbox

__all__ = ("STUCK", "Inbox", "ReadyQueue", "WorkerNeed")

#: workers that have all been in handlers this long, with no job taken since,
#: are stuck: a queued job then gets a worker of its own
STUCK = 0.001


class WorkerNeed(enum.Enum):
    """Whether the queued jobs need another worker: the answer of
    :meth:`ReadyQueue.push` and :meth:`ReadyQueue.check`."""

    #: no: a worker will take the job
    NONE = "none"
    #: yes: start one more worker now
    START_ONE = "start one"
    #: not yet: ask again (call :meth:`ReadyQueue.check`) in :data:`STUCK` seconds
    ASK_AGAIN = "ask again"


class ReadyQueue:
    """Due jobs ordered by (due time, creation order), plus the worker count.

    The worker count is kept under the same lock as the heap, so a job pushed
    while the last worker is leaving always gets a worker. A worker that finds
    the queue empty lingers a moment for more work, so a steady trickle of
    jobs (recurring tasks, say) does not pay for a new worker each time.

    Workers are added only as they are needed. A queued job gets a new worker
    at once when there is none; otherwise only once the running workers are
    stuck (see :data:`STUCK`), which :meth:`check` tells a moment later. A
    burst of short jobs is then run by a worker or two instead of
    ``pool_size`` threads all contending for the GIL with the scheduler's
    loop, which made such bursts up to twice as slow.
    """

    def __init__(self, pool_size: int, linger: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[JobRun] = []
        self._pool_size = pool_size
        self._linger = linger
        self._workers = 0
        self._executing = 0
        #: ``time.monotonic()`` when a worker last took a job
        self._last_pop = 0.0
        #: workers waiting for work, and how many of them were already woken
        self._idle = 0
        self._woken = 0
        self._closed = False

    def push(self, run: JobRun) -> WorkerNeed:
        """Queue *run*; return whether the caller must start one more worker."""
        with self._lock:
            heapq.heappush(self._heap, run)
            if self._idle > self._woken:  # a lingering worker takes it
                self._woken += 1
                self._wakeup.notify()
                return WorkerNeed.NONE
            return self._need_worker()

    def check(self) -> WorkerNeed:
        """Whether the queued jobs need one more worker now (see :data:`STUCK`)."""
        with self._lock:
            if not self._heap or self._idle > self._woken:
                return WorkerNeed.NONE
            return self._need_worker()

    def _need_worker(self) -> WorkerNeed:
        # under the lock
        busy = len(self._heap) + self._executing
        if self._workers >= self._pool_size or self._workers >= busy:
            return WorkerNeed.NONE
        stuck = self._executing == self._workers and time.monotonic() - self._last_pop >= STUCK
        if self._workers == 0 or stuck:
            self._workers += 1
            return WorkerNeed.START_ONE
        return WorkerNeed.ASK_AGAIN

    def close(self) -> None:
        """Start no more jobs: from now on :meth:`pop` returns ``None`` (shutdown)."""
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()

    def pop(self, finished_one: bool) -> JobRun | None:
        """Worker thread: the next job to run, or ``None`` (the worker must then exit).

        Waits up to the linger time for a job when the queue is empty.

        :param finished_one: the worker just finished the job it popped before
        """
        with self._lock:
            if finished_one:
                self._executing -= 1
            heap = self._heap
            deadline: float | None = None
            while not self._closed:
                while heap:
                    run = heapq.heappop(heap)
                    if not run.done:
                        self._executing += 1
                        self._last_pop = time.monotonic()
                        return run
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._linger
                if now >= deadline:
                    break
                self._idle += 1
                try:
                    self._wakeup.wait(deadline - now)
                finally:
                    self._idle -= 1
                    if self._woken:
                        self._woken -= 1
            self._workers -= 1
            return None


class Inbox:
    """Notices from worker threads to the scheduler loop, one wake-up per batch.

    :meth:`run` is a task on the scheduler loop that hands each batch to
    *handle*; :meth:`put` may be called from any thread.
    """

    def __init__(self, token: EventLoopToken, handle: Callable[[list[Any]], None]) -> None:
        self._box = Mailbox(token)
        #: any thread: queue an item for the scheduler loop (the mailbox's own
        #: put, with no call in between: this is paid once per job). Once the
        #: loop has finished, items stay queued and are never handled.
        self.put: Callable[[tuple[JobRun | str, Any]], object] = self._box.put
        self._handle = handle
        self._scope: anyio.CancelScope | None = None
        self.closed = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hand batches to *handle* until :meth:`stop` (on the scheduler loop).

        Shielded from outside cancellation: job ends must still be recorded
        while the scheduler shuts down because its host was cancelled.
        """
        box = self._box
        with anyio.CancelScope(shield=True) as self._scope:
            task_status.started()
            while True:
                await box.wait()
                items = box.take_all()
                if items:
                    if not self.closed:
                        self._handle(items)
                    items = []  # hold no finished job (nor its task) across the checkpoint
                    await anyio.lowlevel.checkpoint()

    def stop(self) -> None:
        """Stop the drain task (on the scheduler loop)."""
        self.closed = True
        if self._scope is not None:
            self._scope.cancel()
