"""Helpers for the tests of the sync face and of the example apps.

Every wait is bounded; nothing is synchronised with sleeps.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from quiv import Event, Job, Quiv, Task

#: bound for every wait in these tests (seconds)
WAIT = 10.0


def quiv_threads() -> list[threading.Thread]:
    """The sync face's scheduler threads that are alive."""
    return [t for t in threading.enumerate() if t.name.startswith("quiv-")]


@contextmanager
def no_leftovers() -> Iterator[None]:
    """Check that the block leaves no scheduler thread, worker thread or temporary file.

    The scheduler thread must be gone when the block ends. Worker threads
    stop when the scheduler's loop has ended, a moment later: they are joined
    with a bound. Threads of the *test's* own loop are not quiv's and are not
    counted: anyio's idle workers of a running asyncio test loop (they serve
    ``to_thread`` calls and a server's sync endpoints) and trio's thread cache.
    """
    own_loop = _running_asyncio_loop()
    threads_before = set(threading.enumerate())
    # A private temporary directory: other processes may use /tmp meanwhile.
    private = tempfile.mkdtemp(prefix="leftovers-")
    saved, tempfile.tempdir = tempfile.tempdir, private
    try:
        yield
        left = os.listdir(private)
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(private, ignore_errors=True)
    assert not left, f"temporary files left behind: {left}"
    assert not quiv_threads(), f"scheduler threads left: {quiv_threads()}"
    for thread in set(threading.enumerate()) - threads_before:
        if thread.name.startswith("Trio thread"):
            continue
        if own_loop is not None and getattr(thread, "loop", None) is own_loop:
            continue
        thread.join(WAIT)
        assert not thread.is_alive(), f"thread left behind: {thread.name}"


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class JobEnds:
    """Records the end (or other *events*) of every job, for sync tests to wait on.

    ``wait_for_task`` on a run-once task races with its end (once ended, the
    task is gone); this waits on the ``JOB_*`` end events instead. Listeners
    run on the main loop, so use it only where that is not the waiting
    thread's own loop (sync tests without a host loop).
    """

    def __init__(
        self,
        scheduler: Quiv,
        events: tuple[Event, ...] = (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED),
    ) -> None:
        self._jobs: dict[str, list[Job]] = {}
        self._changed = threading.Condition()
        for event in events:
            scheduler.add_listener(event, self._on_end)

    def _on_end(self, event: Event, task: Task, job: Job) -> None:
        with self._changed:
            self._jobs.setdefault(task.id, []).append(job)
            self._changed.notify_all()

    def wait(self, task_id: str, count: int = 1) -> Job:
        """Wait until *task_id* has *count* ended jobs; return the last of them."""
        with self._changed:
            assert self._changed.wait_for(
                lambda: len(self._jobs.get(task_id, ())) >= count, WAIT
            ), f"task {task_id} did not end {count} job(s) in {WAIT} s"
            return self._jobs[task_id][count - 1]
