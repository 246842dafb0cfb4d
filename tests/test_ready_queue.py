"""The ready queue's worker decisions: a worker at once for the first job, more
only once the running ones are stuck in handlers, never more than the jobs or
``pool_size``. Then the point of it: a job queued behind a blocked handler
still starts on a worker of its own.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from scheduler_helpers import WAIT, Recorder

from quiv import AsyncQuiv, Event
from quiv._xthread import pool as _ready
from quiv._xthread.pool import ReadyQueue, WorkerNeed


class FakeRun:
    """What the queue needs of a job: ordering and ``done``."""

    count = 0

    def __init__(self) -> None:
        FakeRun.count += 1
        self.seq = FakeRun.count
        self.done = False

    def __lt__(self, other: FakeRun) -> bool:
        return self.seq < other.seq


def push(queue: ReadyQueue) -> WorkerNeed:
    run: Any = FakeRun()
    return queue.push(run)


def test_the_first_job_gets_a_worker_at_once() -> None:
    assert push(ReadyQueue(pool_size=4)) is WorkerNeed.START_ONE


def test_a_job_waits_a_moment_while_a_worker_just_took_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = ReadyQueue(pool_size=4)
    assert push(queue) is WorkerNeed.START_ONE
    assert queue.pop(finished_one=False) is not None  # the worker runs the first job
    monkeypatch.setattr(_ready, "STUCK", 3600.0)
    assert push(queue) is WorkerNeed.ASK_AGAIN  # it will likely come back for this one
    assert queue.check() is WorkerNeed.ASK_AGAIN
    monkeypatch.setattr(_ready, "STUCK", 0.0)  # ... but it has been in its handler too long
    assert queue.check() is WorkerNeed.START_ONE
    assert queue.check() is WorkerNeed.NONE  # one worker per queued job, no more


def test_a_worker_between_jobs_is_not_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = ReadyQueue(pool_size=4)
    monkeypatch.setattr(_ready, "STUCK", 0.0)
    assert push(queue) is WorkerNeed.START_ONE  # started, but it has not taken the job yet
    assert push(queue) is WorkerNeed.ASK_AGAIN


def test_never_more_workers_than_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = ReadyQueue(pool_size=1)
    monkeypatch.setattr(_ready, "STUCK", 0.0)
    assert push(queue) is WorkerNeed.START_ONE
    assert queue.pop(finished_one=False) is not None
    assert push(queue) is WorkerNeed.NONE
    assert queue.check() is WorkerNeed.NONE


def test_nothing_queued_needs_no_worker() -> None:
    assert ReadyQueue(pool_size=4).check() is WorkerNeed.NONE


async def test_a_job_queued_behind_a_blocked_handler_starts_on_another_worker() -> None:
    release = threading.Event()
    second_ran = threading.Event()

    def blocker() -> None:
        release.wait(WAIT)

    def second() -> None:
        second_ran.set()

    async with AsyncQuiv(pool_size=2, db_path=":memory:") as s:
        rec = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        await s.add_task("blocker", blocker, run_once=True)
        await rec.wait_count(Event.JOB_STARTED, 1)
        try:
            second_id = await s.add_task("second", second, run_once=True)
            job = await s.wait_for_task(second_id, timeout=WAIT)
            assert job.status == "completed"
            assert not release.is_set()  # it ran while the blocker still held its worker
        finally:
            release.set()
        await rec.wait_count(Event.JOB_COMPLETED, 2)
