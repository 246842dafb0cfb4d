"""Jobs keep what they returned, their last progress, and why they failed or were cancelled.

Every handler that must still be running when the test reads its job waits
on a :class:`threading.Event` the test sets after reading, with a bounded
wait; reads of progress poll ``get_job`` under a deadline (a notice of new
progress reaches the record within the store's batching delay).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import WAIT, Recorder

from quiv import (
    AsyncQuiv,
    CancelReason,
    Event,
    Job,
    JobNotFoundError,
    JobStatus,
    Quiv,
    ResultState,
    current_job,
)

pytestmark = pytest.mark.anyio

PROGRESS = Event.JOB_PROGRESS

#: the stores a scheduler can have: the temporary SQLite file, SQLite in memory
#: (MemoryStore) and a file the user named (filled in by ``db_path``)
STORES = ["temporary", "memory", "file"]


@pytest.fixture(params=STORES)
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    kind = request.param
    if kind == "temporary":
        return None
    if kind == "memory":
        return ":memory:"
    return str(tmp_path / "quiv.db")


@asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[AsyncQuiv]:
    async with AsyncQuiv(shutdown_timeout=WAIT, **settings) as s:
        yield s


async def run_once(s: AsyncQuiv, func: Callable[..., Any], **kwargs: Any) -> Job:
    task_id = await s.add_task("job", func, run_once=True, **kwargs)
    return await s.wait_for_task(task_id, timeout=WAIT)


async def progress_of(s: AsyncQuiv, recorder: Recorder, job_id: str, expected: Any) -> Job:
    """The job's record once a ``JOB_PROGRESS`` event says it shows *expected*."""
    await recorder.wait_for(
        lambda: any(j.id == job_id and j.progress == expected for j in recorder.jobs(PROGRESS))
    )
    return await s.get_job(job_id)


def stored_state(path: str | None) -> ResultState:
    return ResultState.STORED if path not in (None, ":memory:") else ResultState.MEMORY


# -- results --------------------------------------------------------------------------


async def test_sync_and_async_handlers_keep_their_results(db_path: str | None) -> None:
    def sync_handler() -> dict[str, Any]:
        return {"rows": 3, "names": ["a", "b"]}

    async def async_handler() -> list[int]:
        await anyio.lowlevel.checkpoint()
        return [1, 2, 3]

    async with running(db_path=db_path) as s:
        first = await run_once(s, sync_handler)
        second = await run_once(s, async_handler)
        assert first.result == {"rows": 3, "names": ["a", "b"]}
        assert second.result == [1, 2, 3]
        assert first.result_state is second.result_state is stored_state(db_path)
        assert (await s.get_job(first.id)).result == first.result
        assert (await s.wait_for_job(second.id, timeout=WAIT)).result == [1, 2, 3]
        listed = {job.id: job for job in await s.get_all_jobs()}
        assert listed[second.id].result == [1, 2, 3]
        # a result is the object returned, not what JSON would make of it
        tupled = await run_once(s, lambda: (1, 2))
        assert (await s.get_job(tupled.id)).result == (1, 2)


async def test_no_result_means_no_state() -> None:
    async with running() as s:
        job = await run_once(s, lambda: None)
        assert job.result is None and job.result_state is None


async def test_a_result_json_cannot_represent_stays_in_memory(tmp_path: Path) -> None:
    class Report:
        pass

    report = Report()
    path = str(tmp_path / "quiv.db")
    async with running(db_path=path) as s:
        job = await run_once(s, lambda: report)
        assert job.result is report
        assert job.result_state is ResultState.NOT_JSON
        assert (await s.get_job(job.id)).result is report
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT result, result_state FROM jobs WHERE id = ?", (job.id,))
        assert rows.fetchall() == [(None, "not_json")]  # never on disk, and it says so


async def test_an_oversized_result_is_dropped_with_a_warning(
    db_path: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(db_path=db_path, max_result_bytes=100) as s:
        with caplog.at_level(logging.WARNING, logger="quiv"):
            big = await run_once(s, lambda: "x" * 200)
        small = await run_once(s, lambda: "x" * 50)
        assert big.result is None and big.result_state is ResultState.TOO_LARGE
        assert (await s.get_job(big.id)).result_state is ResultState.TOO_LARGE
        assert small.result == "x" * 50
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(big.id in text and "max_result_bytes=100" in text for text in warnings)


async def test_the_temporary_store_never_writes_results_or_progress() -> None:
    def handler(_progress_hook: Callable[..., None]) -> dict[str, str]:
        _progress_hook(secret="progress")
        return {"secret": "result"}

    async with running() as s:
        job = await run_once(s, handler)
        assert job.result == {"secret": "result"} and job.progress == {"secret": "progress"}
        assert s._engine is not None
        path = s._engine.store.path  # type: ignore[attr-defined]
        await s._engine.store.flush()
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT result, progress FROM jobs WHERE id = ?", (job.id,))
            assert rows.fetchall() == [(None, None)]


async def test_results_go_with_the_history(db_path: str | None) -> None:
    async with running(db_path=db_path, history_retention_seconds=60) as s:
        job = await run_once(s, lambda: {"n": 1})
        assert (await s.get_job(job.id)).result == {"n": 1}
        assert s._engine is not None
        store = s._engine.store
        later = datetime.now(timezone.utc) + timedelta(seconds=120)
        assert await store.prune(later) == 1  # type: ignore[attr-defined]
        with pytest.raises(JobNotFoundError):
            await s.get_job(job.id)
        assert getattr(store, "_data", {}) == {}  # nothing of it kept in memory either


# -- progress ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_callback", [False, True])
async def test_progress_is_readable_while_the_job_runs(
    db_path: str | None, with_callback: bool
) -> None:
    go_on = threading.Event()
    delivered: list[dict[str, Any]] = []

    def handler(_progress_hook: Callable[..., None]) -> str:
        _progress_hook(step=1, of=2)
        assert go_on.wait(WAIT), "the test never let the job go on"
        _progress_hook(step=2, of=2)
        return "done"

    callback = (lambda **payload: delivered.append(payload)) if with_callback else None
    async with running(db_path=db_path) as s:
        recorder = Recorder(s, [PROGRESS])
        task_id = await s.add_task("job", handler, run_once=True, progress_callback=callback)
        task = await s.get_task(task_id)
        assert task.next_job_id is not None
        try:
            job = await progress_of(s, recorder, task.next_job_id, {"step": 1, "of": 2})
            assert job.status is JobStatus.RUNNING
            assert (await s.get_all_jobs(task_id=task_id))[0].progress == {"step": 1, "of": 2}
        finally:
            go_on.set()
        final = await s.wait_for_job(task.next_job_id, timeout=WAIT)
        assert final.progress == {"step": 2, "of": 2} and final.result == "done"
    if with_callback:
        assert delivered == [{"step": 1, "of": 2}, {"step": 2, "of": 2}]


async def test_job_progress_events_carry_the_recorded_payload(db_path: str | None) -> None:
    """Each event's job shows a payload the handler sent, the record agrees, the last is last."""
    release = threading.Event()

    def handler(_progress_hook: Callable[..., None]) -> None:
        _progress_hook(step=1)
        assert release.wait(WAIT), "the test never let the job go on"
        for step in range(2, 6):
            _progress_hook(step=step)

    async with running(db_path=db_path) as s:
        recorder = Recorder(s, [PROGRESS, Event.JOB_COMPLETED])
        task_id = await s.add_task("job", handler, run_once=True)
        job_id = (await s.get_task(task_id)).next_job_id
        assert job_id is not None
        first = await progress_of(s, recorder, job_id, {"step": 1})
        assert first.status is JobStatus.RUNNING and first.progress == {"step": 1}
        release.set()
        await recorder.wait_count(Event.JOB_COMPLETED, 1)
    payloads = [j.progress for j in recorder.jobs(PROGRESS)]
    # in order, none invented; reports faster than the loop reads them may be folded
    assert payloads[0] == {"step": 1} and payloads[-1] == {"step": 5}
    steps = [p["step"] for p in payloads if p is not None]
    assert steps == sorted(set(steps)) and len(steps) == len(payloads)
    assert all(j.status is JobStatus.RUNNING for j in recorder.jobs(PROGRESS))
    assert all(r.task.id == task_id for r in recorder.records)


async def test_current_job_progress_updates_the_job_too() -> None:
    async def handler() -> None:
        job = current_job()
        assert job is not None
        for i in range(100):
            job.progress(i=i)

    async with running() as s:
        job = await run_once(s, handler)
        assert job.progress == {"i": 99}


async def test_a_progress_callback_knows_the_sending_job() -> None:
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    both = anyio.Event()  # set on the main loop (this test's loop) by the second callback

    def callback(_job_id: str, **payload: Any) -> None:
        job = current_job()
        seen.append((_job_id, None if job is None else job.job_id, payload))
        if len(seen) == 2:
            both.set()

    async def async_callback(**payload: Any) -> None:
        await anyio.lowlevel.checkpoint()
        job = current_job()
        seen.append(("async", None if job is None else job.job_id, payload))
        if len(seen) == 2:
            both.set()

    def handler(_progress_hook: Callable[..., None]) -> None:
        _progress_hook(n=1)

    async with running() as s:
        first = await run_once(s, handler, progress_callback=callback)
        second = await run_once(s, handler, progress_callback=async_callback)
        with anyio.fail_after(WAIT):
            await both.wait()
    assert (first.id, first.id, {"n": 1}) in seen
    assert ("async", second.id, {"n": 1}) in seen
    assert current_job() is None


# -- errors and cancellation -------------------------------------------------------------


class ReportError(Exception):
    pass


async def test_a_failed_job_has_its_type_and_traceback(db_path: str | None) -> None:
    def failing_step() -> None:
        raise ReportError("no data")

    def handler() -> None:
        failing_step()

    async with running(db_path=db_path) as s:
        job = await run_once(s, handler)
        assert job.status is JobStatus.FAILED
        assert job.error_message == "ReportError: no data"
        assert job.error_type == f"{__name__}.ReportError"
        assert job.traceback is not None
        assert "failing_step" in job.traceback and job.traceback.endswith("no data\n")
        assert "_xthread" not in job.traceback  # starts at the handler
        stored = await s.get_job(job.id)
        assert (stored.error_type, stored.traceback) == (job.error_type, job.traceback)
        builtin = await run_once(s, lambda: 1 / 0)
        assert builtin.error_type == "ZeroDivisionError"


async def test_a_long_traceback_keeps_its_end() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("bottom")
        deep(n - 1)

    async with running() as s:
        job = await run_once(s, lambda: deep(300))
        assert job.traceback is not None
        assert len(job.traceback) <= 8200 and job.traceback.endswith("ValueError: bottom\n")


async def test_cancelled_jobs_say_why() -> None:
    started = threading.Semaphore(0)

    def waiting(_stop_event: threading.Event) -> None:
        started.release()
        assert _stop_event.wait(WAIT)

    async def until_started() -> None:
        assert await anyio.to_thread.run_sync(started.acquire, True, WAIT)

    async with running() as s:
        task_id = await s.add_task("wait", waiting, run_once=True)
        job_id = (await s.get_task(task_id)).next_job_id
        assert job_id is not None
        await until_started()
        assert s.cancel_job(job_id)
        job = await s.wait_for_job(job_id, timeout=WAIT)
        assert job.cancel_reason is CancelReason.CANCELLED

        timed = await run_once(s, waiting, timeout=0.05)
        assert timed.cancel_reason is CancelReason.TIMED_OUT
        await until_started()  # (its start, so the next wait is the next job's)

        task_id = await s.add_task("removed", waiting, run_once=True)
        job_id = (await s.get_task(task_id)).next_job_id
        assert job_id is not None
        await until_started()
        await s.remove_task(task_id)
        removed = await s.wait_for_job(job_id, timeout=WAIT)
        assert removed.cancel_reason is CancelReason.TASK_REMOVED
        completed = await run_once(s, lambda: 1)
        assert completed.cancel_reason is None


async def test_jobs_cancelled_by_the_shutdown_say_so(tmp_path: Path) -> None:
    path = str(tmp_path / "quiv.db")
    started = threading.Event()

    def busy(_stop_event: threading.Event) -> None:
        started.set()
        assert _stop_event.wait(WAIT)

    async with running(db_path=path, pool_size=1) as s:
        running_task = await s.add_task("busy", busy, run_once=True)
        queued_task = await s.add_task("queued", lambda: None, run_once=True)
        running_id = (await s.get_task(running_task)).next_job_id
        queued_id = (await s.get_task(queued_task)).next_job_id
        assert await anyio.to_thread.run_sync(started.wait, WAIT)
    async with running(db_path=path) as s:
        assert running_id is not None and queued_id is not None
        for job_id in (running_id, queued_id):
            job = await s.get_job(job_id)
            assert job.status is JobStatus.CANCELLED
            assert job.cancel_reason is CancelReason.SHUTDOWN


# -- from a task to its jobs -------------------------------------------------------------


async def test_a_task_leads_to_its_jobs() -> None:
    go_on = threading.Event()

    def handler() -> str:
        assert go_on.wait(WAIT)
        return "ok"

    async with running() as s:
        once = await s.add_task("once", handler, run_once=True, delay=3600)
        task = await s.get_task(once)
        assert task.next_job_id is not None
        assert task.running_job_id is None and task.last_job_id is None
        await s.run_task_immediately(once)
        running_task = await s.get_task(once)
        assert running_task.running_job_id == running_task.last_job_id == task.next_job_id
        assert running_task.next_job_id == task.next_job_id  # still shown while it runs
        go_on.set()
        job = await s.wait_for_job(task.next_job_id, timeout=WAIT)
        assert job.result == "ok"

        recurring = await s.add_task("every", lambda: 7, interval=3600)
        job = await s.wait_for_task(recurring, timeout=WAIT)
        after = await s.get_task(recurring)
        assert after.next_job_id is None and after.running_job_id is None
        assert after.last_job_id == job.id


# -- restart -----------------------------------------------------------------------------


async def test_results_and_progress_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "quiv.db")

    def handler(_progress_hook: Callable[..., None]) -> dict[str, Any]:
        _progress_hook(step=3, of=3)
        return {"total": 42, "pair": (1, 2)}

    async with running(db_path=path) as s:
        job = await run_once(s, handler)
        failed = await run_once(s, lambda: 1 / 0)
    async with running(db_path=path) as s:
        again = await s.get_job(job.id)
        assert again.result == {"total": 42, "pair": [1, 2]}  # as JSON made it
        assert again.result_state is ResultState.STORED
        assert again.progress == {"step": 3, "of": 3}
        back = await s.get_job(failed.id)
        assert back.error_type == "ZeroDivisionError" and back.traceback == failed.traceback


async def test_jobs_are_json_friendly() -> None:
    async with running() as s:
        job = await run_once(s, lambda: {"a": [1]})
    text = json.dumps(dataclasses.asdict(job), default=str)
    data = json.loads(text)
    assert data["result"] == {"a": [1]} and data["result_state"] == "memory"
    assert data["cancel_reason"] is None


# -- the sync face -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_sync_face_keeps_results_and_progress(tmp_path: Path, backend: str) -> None:
    go_on = threading.Event()

    def handler(_progress_hook: Callable[..., None]) -> int:
        _progress_hook(half=True)
        assert go_on.wait(WAIT)
        return 5

    with Quiv(db_path=str(tmp_path / "quiv.db"), shutdown_timeout=WAIT, backend=backend) as q:
        task_id = q.add_task("sync", handler, run_once=True)
        job_id = q.get_task(task_id).next_job_id
        assert job_id is not None
        try:
            deadline = threading.Event()
            for _ in range(int(WAIT / 0.005)):
                if q.get_job(job_id).progress == {"half": True}:
                    break
                deadline.wait(0.005)
            assert q.get_job(job_id).progress == {"half": True}
        finally:
            go_on.set()
        job = q.wait_for_job(job_id, timeout=WAIT)
        assert job.result == 5 and job.result_state is ResultState.STORED
        failed = q.wait_for_task(q.add_task("fail", lambda: 1 / 0, run_once=True), timeout=WAIT)
        assert failed.error_type == "ZeroDivisionError" and failed.traceback


async def test_a_version_2_file_gains_the_new_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "v2.db")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, task_id TEXT NOT NULL,"
            " task_name TEXT NOT NULL, status TEXT NOT NULL, started_at INTEGER,"
            " ended_at INTEGER, duration_seconds REAL, error_message TEXT,"
            " attempt INTEGER NOT NULL, scheduled_at INTEGER, owner TEXT)"
        )
        now = int(datetime.now(timezone.utc).timestamp() * 1e6)
        conn.execute(
            "INSERT INTO jobs VALUES ('old', 't', 'name', 'failed', ?, ?, 1.0, 'E: x', 1, ?, NULL)",
            (now, now, now),
        )
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    async with running(db_path=path) as s:
        old = await s.get_job("old")
        assert (old.status, old.error_message) == (JobStatus.FAILED, "E: x")
        assert (old.result, old.progress, old.error_type, old.traceback) == (None,) * 4
        new = await run_once(s, lambda: {"n": 1})
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchall() == [(4,)]
        rows = conn.execute("SELECT result, result_state FROM jobs WHERE id = ?", (new.id,))
        assert rows.fetchall() == [('{"n":1}', "stored")]


async def test_a_retry_of_a_run_once_task_shows_its_own_id() -> None:
    attempts: list[str] = []

    def flaky(_job_id: str) -> str:
        attempts.append(_job_id)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return "second try"

    async with running() as s:
        task_id = await s.add_task("flaky", flaky, run_once=True, max_retries=1, retry_backoff=0.01)
        first_id = (await s.get_task(task_id)).next_job_id
        assert first_id is not None
        failed = await s.wait_for_job(first_id, timeout=WAIT)
        assert failed.id == first_id and failed.status is JobStatus.FAILED
        assert failed.error_type == "ValueError"
        retry = await s.wait_for_task(task_id, timeout=WAIT)
        assert retry.result == "second try" and retry.attempt == 2
        assert attempts == [first_id, retry.id] and retry.id != first_id


async def test_get_task_right_after_add_task_finds_a_run_once_task_that_ends_at_once() -> None:
    """The 202 pattern: ``get_task`` reads the task before it yields, so a job that
    ends at once cannot take its task (and its ``next_job_id``) away first."""
    async with AsyncQuiv() as s:
        job_ids = []
        for _ in range(64):  # more than one full yield of the checkpoint rule (every 16th call)
            task_id = await s.add_task("quick", lambda: 42, run_once=True)
            job_id = (await s.get_task(task_id)).next_job_id
            assert job_id is not None
            job_ids.append(job_id)
        for job_id in job_ids:
            job = await s.wait_for_job(job_id, timeout=WAIT)
            assert job.result == 42
