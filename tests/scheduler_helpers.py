"""Helpers for the scheduler tests: event recorders, gates, thread probes.

Tests synchronise on scheduler events (listeners, ``wait_for_*``) and on
``threading.Event`` gates that handlers block on, never on sleeps. Every wait
is bounded.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from quiv import AsyncQuiv, Event, Job, Task, TaskStatus
from quiv._xthread.threads import THREAD_NAME

#: bound for every wait in the tests (seconds)
WAIT = 5.0


@dataclass
class Record:
    event: Event
    task: Task
    job: Job | None


class Recorder:
    """Records scheduler events through listeners and lets a test wait for them."""

    def __init__(self, scheduler: AsyncQuiv, events: Iterable[Event] | None = None) -> None:
        self.records: list[Record] = []
        self._changed = anyio.Event()
        for event in events if events is not None else Event:
            scheduler.add_listener(event, self._on_event)

    def _on_event(self, event: Event, task: Task, job: Job | None = None) -> None:
        self.records.append(Record(event, task, job))
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def events(self, *, task_id: str | None = None) -> list[Event]:
        return [r.event for r in self.records if task_id is None or r.task.id == task_id]

    def jobs(self, event: Event, *, task_id: str | None = None) -> list[Job]:
        return [
            r.job
            for r in self.records
            if r.event is event and r.job is not None and (task_id is None or r.task.id == task_id)
        ]

    def count(self, event: Event, *, task_id: str | None = None) -> int:
        return sum(
            1
            for r in self.records
            if r.event is event and (task_id is None or r.task.id == task_id)
        )

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until *predicate()* is true, re-checking after every recorded event."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_count(
        self, event: Event, count: int, *, task_id: str | None = None, timeout: float = WAIT
    ) -> list[Job]:
        """Wait until *event* was seen *count* times; return the jobs it carried."""
        await self.wait_for(lambda: self.count(event, task_id=task_id) >= count, timeout)
        return self.jobs(event, task_id=task_id)


@dataclass
class Gates:
    """``threading.Event`` gates for handlers to block on; all released at teardown."""

    gates: list[threading.Event] = field(default_factory=list)

    def new(self) -> threading.Event:
        gate = threading.Event()
        self.gates.append(gate)
        return gate

    def release_all(self) -> None:
        for gate in self.gates:
            gate.set()


def blocking(gate: threading.Event, log: list[Any] | None = None, tag: object = None) -> Any:
    """A sync handler that blocks until *gate* is set (bounded), logging *tag* at entry."""

    def handler() -> None:
        if log is not None:
            log.append(tag)
        gate.wait(WAIT * 2)

    return handler


async def settle() -> None:
    """Let the loop's tasks take a few turns, so the timer has seen a clock change.

    The timer dispatches due tasks synchronously when it wakes (a task's status
    turns ``running`` at once), and waking it takes one turn on asyncio and at
    most two on trio. Handlers run in threads: their effects are waited for
    through events, never through this.
    """
    for _ in range(8):
        await anyio.lowlevel.checkpoint()


async def is_idle(scheduler: AsyncQuiv, task_id: str) -> bool:
    """Whether *task_id* has no job in flight (nothing was dispatched for it)."""
    task = await scheduler.get_task(task_id)
    return task.status is not TaskStatus.RUNNING


def pool_threads() -> list[threading.Thread]:
    """quiv's worker threads that are still alive (they exit when their scheduler stops)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


_HANDLER_FRAMES = frozenset({"_execute_sync", "_execute_async", "_await_in_scope"})


def handler_threads() -> list[int]:
    """Idents of threads currently running a quiv handler (a ``_runner._execute_*`` frame)."""
    busy = []
    for ident, frame in sys._current_frames().items():
        f: Any = frame
        while f is not None:
            code = f.f_code
            if code.co_name in _HANDLER_FRAMES and code.co_filename.replace("\\", "/").endswith(
                "quiv/_xthread/runner.py"
            ):
                busy.append(ident)
                break
            f = f.f_back
    return busy


async def join_threads(threads: Iterable[threading.Thread], timeout: float = WAIT) -> list[str]:
    """Join *threads* (from a worker thread, so the loop runs on), within *timeout* in all.

    Return the names of those still alive after it. Joining a known set of
    threads waits on their exit, not on a clock: use it for thread-side state
    that no scheduler event reports (a worker leaving a handler's frame).
    """
    todo = list(threads)

    def join_all() -> None:
        deadline = time.monotonic() + timeout
        for thread in todo:
            thread.join(max(0.0, deadline - time.monotonic()))

    await anyio.to_thread.run_sync(join_all)
    return [t.name for t in todo if t.is_alive()]


async def join_pool_threads(timeout: float = WAIT) -> None:
    """Wait for quiv's worker threads to exit (bounded), then check no handler runs.

    Only once every scheduler has stopped: a stopped scheduler's threads exit
    as soon as their call returns, so a handler still running shows as a
    thread that does not exit.
    """
    assert await join_threads(pool_threads(), timeout) == []
    assert handler_threads() == []


def threads_running_quiv_code() -> list[str]:
    """Names of the threads (other than this one) with quiv code on their stack."""
    here = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    quiv_dir = os.path.dirname(os.path.abspath(sys.modules["quiv"].__file__ or ""))
    busy = []
    for ident, frame in sys._current_frames().items():
        f: Any = frame
        while f is not None and ident != here:
            if os.path.abspath(f.f_code.co_filename).startswith(quiv_dir + os.sep):
                busy.append(names.get(ident, str(ident)))
                break
            f = f.f_back
    return busy
