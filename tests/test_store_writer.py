"""BatchWriter on its own: which rows a batch takes, and when.

Final states (ended jobs, deleted tasks) go with the next batch; a live
record (a job or task still changing) waits up to ``SETTLE_SECONDS`` for its
final state, so a short job costs one row; a flush writes everything. The
batches are driven by hand here (``_write``), never by the clock.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from store_helpers import make_job, make_task

from quiv import Job, JobStatus, Task
from quiv._store import _writer
from quiv._store._writer import BatchWriter, JobRows, TaskRows


class LiveJob:
    """A live record, as the engine passes it: snapshotted when written."""

    in_flight = True

    def __init__(self, job: Job) -> None:
        self.id = job.id
        self.job = job

    def snapshot(self) -> Job:
        return self.job


class LiveTask:
    def __init__(self, task: Task, *, in_flight: bool = True) -> None:
        self.id = task.id
        self.task = task
        #: a job of the task is in flight (``TaskState.in_flight``)
        self.in_flight = in_flight

    def snapshot(self) -> Task:
        return self.task


class Batches:
    """A ``write_batch`` that records what it was given (and fails on demand)."""

    def __init__(self) -> None:
        self.written: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.fail = 0

    async def __call__(self, tasks: TaskRows, jobs: JobRows) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        self.written.append((dict(tasks), dict(jobs)))


@pytest.fixture
def batches() -> Batches:
    return Batches()


@pytest.fixture
def writer(batches: Batches) -> BatchWriter:
    return BatchWriter(batches, logging.getLogger("quiv.test"))


async def test_a_live_job_waits_for_its_end_and_costs_one_row(
    writer: BatchWriter, batches: Batches
) -> None:
    job = make_job("j", status=JobStatus.RUNNING)
    writer.put_job(LiveJob(job))
    assert await writer._write(everything=False)
    assert batches.written == []  # young and still running: not yet
    final = replace(job, status=JobStatus.COMPLETED)
    writer.put_job(final)
    assert await writer._write(everything=False)
    assert batches.written == [({}, {"j": final})]
    assert writer.pending_writes == 0


async def test_a_live_record_older_than_the_settle_time_is_written(
    writer: BatchWriter, batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = LiveTask(make_task("t"))
    writer.put_task(task)
    assert await writer._write(everything=False)
    assert batches.written == []
    monkeypatch.setattr(_writer, "SETTLE_SECONDS", 0.0)
    assert await writer._write(everything=False)
    assert batches.written == [({"t": task}, {})]


async def test_final_states_do_not_wait_for_live_ones(
    writer: BatchWriter, batches: Batches
) -> None:
    live = LiveJob(make_job("running", status=JobStatus.RUNNING))
    ended = make_job("ended")
    writer.put_job(live)
    writer.put_job(ended)
    writer.delete_task("gone")
    assert await writer._write(everything=False)
    assert batches.written == [({"gone": None}, {"ended": ended})]
    assert writer.pending_writes == 1  # the running job waits


async def test_a_live_task_with_no_job_in_flight_goes_with_the_next_batch(
    writer: BatchWriter, batches: Batches
) -> None:
    waiting = LiveTask(make_task("waiting"), in_flight=False)  # its next run is far away
    running = LiveTask(make_task("running"))  # a job in flight: it changes again soon
    writer.put_task(waiting)
    writer.put_task(running)
    assert await writer._write(everything=False)
    assert batches.written == [({"waiting": waiting}, {})]


async def test_a_flush_writes_live_records_at_once(writer: BatchWriter, batches: Batches) -> None:
    live = LiveJob(make_job("running", status=JobStatus.RUNNING))
    writer.put_job(live)
    assert await writer.write_now()
    assert batches.written == [({}, {"running": live})]
    assert writer.pending_writes == 0


async def test_a_failed_batch_is_retried_with_the_next_one_newest_state_winning(
    writer: BatchWriter, batches: Batches
) -> None:
    running = LiveJob(make_job("j", status=JobStatus.RUNNING))
    writer.put_job(running)
    writer.put_job(other := make_job("k"))
    batches.fail = 1
    assert not await writer.write_now()
    assert batches.written == []
    writer.put_job(ended := make_job("j"))  # j ended meanwhile
    assert await writer._write(everything=False)  # retried rows do not wait again
    assert batches.written == [({}, {"j": ended, "k": other})]
    assert writer.pending_writes == 0


class QueuedJob(LiveJob):
    """A live job still waiting for a worker (``JobRun.queued``)."""

    queued = True


async def test_a_queued_job_waits_past_the_settle_time_until_it_starts(
    writer: BatchWriter, batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = QueuedJob(make_job("queued", status=JobStatus.SCHEDULED))
    running = LiveJob(make_job("running", status=JobStatus.RUNNING))
    writer.put_job(queued)
    writer.put_job(running)
    monkeypatch.setattr(_writer, "SETTLE_SECONDS", 0.0)
    assert await writer._write(everything=False)
    # the running job settled; the queued one waits for its start (or its end)
    assert batches.written == [({}, {"running": running})]
    ended = make_job("queued", status=JobStatus.COMPLETED)
    writer.put_job(ended)
    assert await writer._write(everything=False)
    assert batches.written[-1] == ({}, {"queued": ended})  # one row for it, its last state
    assert writer.pending_writes == 0


async def test_a_flush_or_host_mode_writes_queued_jobs_too(
    writer: BatchWriter, batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = QueuedJob(make_job("first", status=JobStatus.SCHEDULED))
    writer.put_job(first)
    assert await writer.write_now()  # a read: everything, queued or not
    assert batches.written == [({}, {"first": first})]
    writer.queued_rows = True  # host mode: other processes see what is queued
    second = QueuedJob(make_job("second", status=JobStatus.SCHEDULED))
    writer.put_job(second)
    monkeypatch.setattr(_writer, "SETTLE_SECONDS", 0.0)
    assert await writer._write(everything=False)
    assert batches.written[-1] == ({}, {"second": second})


async def test_a_queued_jobs_task_waits_with_it_until_the_job_ends(
    writer: BatchWriter, batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = LiveTask(make_task("t"))
    task.queued = True  # type: ignore[attr-defined]  # its job waits for a worker
    writer.put_task(task)
    writer.put_job(QueuedJob(make_job("j", status=JobStatus.SCHEDULED)))
    monkeypatch.setattr(_writer, "SETTLE_SECONDS", 0.0)
    assert await writer._write(everything=False)
    assert batches.written == []  # queued: nothing written, however long it waits
    running = LiveJob(make_job("j", status=JobStatus.RUNNING))  # the job started
    writer.put_job(running)
    assert await writer._write(everything=False)
    assert batches.written == [({}, {"j": running})]  # settled; its task still waits
    ended = LiveTask(make_task("t"), in_flight=False)
    writer.put_task(ended)
    writer.put_job(make_job("j", status=JobStatus.COMPLETED))
    assert await writer._write(everything=False)
    assert list(batches.written[-1][0]) == ["t"] and writer.pending_writes == 0
