"""SQLiteStore specifics: batching, files, persistence, faults, connections."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from store_helpers import (
    ProbeConnection,
    at,
    job_lifecycle,
    make_job,
    make_task,
    probe_factory,
    recording_logger,
    running,
)

from quiv import JobStatus, StoreError, TaskStatus
from quiv._store import SQLiteStore
from quiv._store._connection import (
    AiosqliteConnection,
    Connection,
    ThreadConnection,
    open_connection,
)
from quiv._store._files import SIDE_FILE_SUFFIXES
from quiv._store._schema import PRUNE_CHUNK
from quiv.abc import JobQuery


def probe(store: SQLiteStore) -> ProbeConnection:
    return cast(ProbeConnection, store.connection)


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


async def test_open_connection_matches_the_async_library(anyio_backend_name: str) -> None:
    conn = await open_connection(":memory:")
    try:
        expected = AiosqliteConnection if anyio_backend_name == "asyncio" else ThreadConnection
        assert type(conn) is expected
        assert await conn.fetchall("SELECT 1 + 1") == [(2,)]
    finally:
        await conn.close()
    await conn.close()  # twice is fine
    with pytest.raises(sqlite3.ProgrammingError):
        await conn.fetchall("SELECT 1")


@pytest.mark.parametrize("kind", [AiosqliteConnection, ThreadConnection])
async def test_connection_transactions_commit_and_roll_back(
    anyio_backend_name: str, kind: Any
) -> None:
    if kind is AiosqliteConnection and anyio_backend_name != "asyncio":
        pytest.skip("aiosqlite is asyncio-only")
    conn: Connection = await kind.open(":memory:")
    try:
        await conn.execute("CREATE TABLE t (x INTEGER)")
        async with conn.transaction():
            await conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.executemany("INSERT INTO t VALUES (?)", [(3,)])
                raise ZeroDivisionError
        assert await conn.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        assert await conn.execute("DELETE FROM t") == 2
        assert conn.commits == 1
    finally:
        await conn.close()


async def test_thread_connection_runs_the_store_on_any_backend() -> None:
    store = SQLiteStore(connection_factory=ThreadConnection.open)
    async with running(store):
        assert type(store.connection) is ThreadConnection
        for state in job_lifecycle(make_job("j")):
            store.put_job(state)
        got = await store.get_job("j")
        assert got is not None and got.status is JobStatus.COMPLETED


async def test_writes_are_coalesced_into_one_transaction() -> None:
    store = SQLiteStore(connection_factory=probe_factory)
    async with running(store):
        conn = probe(store)
        before = conn.commits
        jobs = [make_job(f"job-{i}") for i in range(5000)]
        for job in jobs:  # each job put three times, all before the writer runs
            for state in job_lifecycle(job):
                store.put_job(state)
        store.put_task(make_task(status=TaskStatus.RUNNING))
        store.put_task(make_task(status=TaskStatus.ACTIVE))
        assert store.pending_writes == 5001
        await store.flush()
        assert store.pending_writes == 0
        assert conn.commits - before == 1
        assert conn.rows_written == 5001  # the last state of each row, written once
        assert await store.count_jobs() == 5000
        completed = await store.get_jobs(JobQuery(status=JobStatus.COMPLETED, limit=1))
        assert len(completed) == 1
        assert (await store.get_tasks())[0].status is TaskStatus.ACTIVE


async def test_a_new_task_deleted_before_its_row_was_written_costs_no_write() -> None:
    store = SQLiteStore(connection_factory=probe_factory)
    async with running(store):
        conn = probe(store)
        store.put_task(make_task("kept"), new=True)
        store.put_task(make_task("came-and-went"), new=True)
        store.put_task(make_task("came-and-went", status=TaskStatus.RUNNING))
        store.delete_task("came-and-went")
        await store.flush()
        assert conn.rows_written == 1  # no row and no deletion for the second task
        assert [task.id for task in await store.get_tasks()] == ["kept"]
        # once its row is written, deleting a new task does reach the database
        store.delete_task("kept")
        await store.flush()
        assert conn.rows_written == 2
        assert await store.get_tasks() == []


async def test_temporary_database_is_private_and_removed_on_aclose() -> None:
    store = SQLiteStore()
    assert store.path is None  # nothing touches the disk before start
    async with running(store):
        path = store.path
        assert path is not None
        directory = os.path.dirname(path)
        assert _mode(directory) == 0o700
        assert _mode(path) == 0o600
        store.put_job(make_job("j"))
        await store.flush()
        assert _exists(path + "-wal")
        assert _mode(path + "-wal") & 0o077 == 0
    assert not _exists(directory)


_NEVER_CLOSED = """
import sys
import anyio
from quiv._store import SQLiteStore
from quiv import Job, JobStatus

KEEP = []

async def main():
    async with anyio.create_task_group() as tg:
        store = SQLiteStore()
        KEEP.append(store)  # still referenced at exit: only the exit hook can clean up
        await store.start(tg)
        store.put_job(Job("j", "t", "n", JobStatus.RUNNING, None, None, None, None, 1))
        await store.flush()
        print(store.path, flush=True)
        tg.cancel_scope.cancel()  # leave without aclose()

anyio.run(main, backend=sys.argv[1])
"""


async def test_temporary_database_is_removed_when_never_closed(
    anyio_backend_name: str, tmp_path: Path
) -> None:
    script = tmp_path / "never_closed.py"
    script.write_text(textwrap.dedent(_NEVER_CLOSED))
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-W", "ignore::ResourceWarning", str(script), anyio_backend_name],
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    path = result.stdout.decode().strip()
    assert path.endswith("quiv.db")
    assert not _exists(path)
    assert not _exists(os.path.dirname(path))


async def test_persistent_path_keeps_history_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    async with running(SQLiteStore(path)) as store:
        store.put_task(make_task("t1", args=(1, 2), status=TaskStatus.PAUSED))
        store.put_task(make_task("t2"))
        store.delete_task("t2")
        for state in job_lifecycle(make_job("j1", task_id="t1", started_at=at(5))):
            store.put_job(state)
        (task,) = await store.get_tasks()
        assert (task.id, task.status, task.args) == ("t1", TaskStatus.PAUSED, ())
        assert _exists(f"{path}-owner-{store.owner}")
    assert _mode(path) == 0o600
    assert not _exists(f"{path}-journal")
    assert not [n for n in os.listdir(tmp_path) if "-owner-" in n]  # the lock goes at close
    async with running(SQLiteStore(str(path))) as store:
        # a task row records a live schedule: the closed store took its own along
        assert await store.get_tasks() == []
        job = await store.get_job("j1")
        assert job is not None and job.status is JobStatus.COMPLETED
        assert job.started_at == at(5)
    assert path.exists()


async def test_persistent_file_with_other_mode_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    os.chmod(path, 0o640)
    async with running(SQLiteStore(path)):
        pass
    assert _mode(path) == 0o640


async def test_unreadable_database_is_a_store_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    async with anyio.create_task_group() as tg:
        with pytest.raises(StoreError, match="cannot open the job store"):
            await SQLiteStore(garbage).start(tg)
        with pytest.raises(StoreError):
            await SQLiteStore(tmp_path / "missing-dir" / "x.db").start(tg)


async def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    store = SQLiteStore(path)
    async with anyio.create_task_group() as tg:
        with pytest.raises(StoreError, match="schema version 99"):
            await store.start(tg)
    await store.aclose()


async def test_temp_files_are_removed_when_start_fails() -> None:
    paths: list[str] = []

    async def broken(path: str) -> Connection:
        paths.append(path)
        raise sqlite3.OperationalError("unable to open database file")

    async with anyio.create_task_group() as tg:
        with pytest.raises(StoreError, match="unable to open"):
            await SQLiteStore(connection_factory=broken).start(tg)
    assert paths and not _exists(os.path.dirname(paths[0]))


async def test_write_faults_are_logged_retried_and_lose_nothing() -> None:
    logger, recorder = recording_logger()
    store = SQLiteStore(logger=logger, connection_factory=probe_factory)
    async with running(store):
        conn = probe(store)
        store.put_job(make_job("before"))
        await store.flush()
        conn.fail_writes = 3
        jobs = [make_job(f"job-{i}") for i in range(20)]
        for job in jobs:
            store.put_job(job_lifecycle(job)[1])  # running
        # while the store is failing, flushes and reads raise StoreError (never hang)
        with anyio.fail_after(10):
            while conn.fail_writes:
                with pytest.raises(StoreError, match="cannot write"):
                    await store.get_job("job-0")
        assert store.pending_writes == 20
        errors = [r for r in recorder.records if r.levelno == logging.ERROR]
        assert errors and "database or disk is full" in errors[0].getMessage()
        assert errors[0].exc_info is not None
        # newer states queued during the failure win over the re-queued ones
        for job in jobs:
            store.put_job(job)  # completed
        with anyio.fail_after(10):
            await store.flush()
        assert store.pending_writes == 0
        assert await store.count_jobs() == 21
        done = await store.get_jobs(JobQuery(status=JobStatus.COMPLETED))
        assert len(done) == 21
        assert any("works again" in m for m in recorder.messages(logging.WARNING))


async def test_writer_retries_in_the_background_without_any_reader() -> None:
    logger, recorder = recording_logger()
    store = SQLiteStore(logger=logger, connection_factory=probe_factory)
    async with running(store):
        conn = probe(store)
        conn.fail_writes = 2
        store.put_job(make_job("j"))
        with anyio.fail_after(10):
            await recorder.wait_for(lambda r: "works again" in r.getMessage())
        assert store.pending_writes == 0
        assert conn.rows_written == 1


async def test_read_faults_are_store_errors() -> None:
    store = SQLiteStore(connection_factory=probe_factory)
    async with running(store):
        probe(store).fail_reads = 1
        with pytest.raises(StoreError, match="query failed") as caught:
            await store.get_jobs(JobQuery())
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert await store.get_jobs(JobQuery()) == []


async def test_flush_raises_instead_of_hanging_when_the_writer_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    async with anyio.create_task_group() as tg:
        await store.start(tg)
        tg.cancel_scope.cancel()  # the host tears the task group down first
    store.put_job(make_job("late"))
    with anyio.fail_after(5), pytest.raises(StoreError, match="not running"):
        await store.flush()
    await store.aclose()  # still writes what is queued
    async with running(SQLiteStore(path)) as reopened:
        assert await reopened.get_job("late") is not None


async def test_aclose_writes_rows_queued_during_closing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with running(SQLiteStore(path)) as store:
        for i in range(100):
            store.put_job(make_job(f"j{i}"))
    async with running(SQLiteStore(path)) as store:
        assert await store.count_jobs() == 100


async def test_pruning_deletes_in_chunks() -> None:
    store = SQLiteStore(history_retention_seconds=60, connection_factory=probe_factory)
    async with running(store):
        for i in range(PRUNE_CHUNK * 2 + 7):
            store.put_job(make_job(f"j{i}", ended_at=at(0)))
        store.put_job(make_job("recent", ended_at=at(100)))
        assert await store.prune(at(100)) == PRUNE_CHUNK * 2 + 7
        assert await store.count_jobs() == 1


def test_side_file_suffixes_cover_sqlite_journals() -> None:
    assert set(SIDE_FILE_SUFFIXES) == {"-wal", "-shm", "-journal"}
