"""Crash recovery with ``db_path=``: row owners, dead processes, and nothing private on disk.

The processes that die or stay alive are real child processes; the parent side
runs on asyncio and trio.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import sqlite3
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from scheduler_helpers import WAIT
from store_helpers import make_job, make_task, recording_logger, running

from quiv import AsyncQuiv, CancelReason, JobStatus
from quiv._store import SQLiteStore
from quiv._store._owners import OwnerLock, lock_path, new_owner_id, owner_alive
from quiv.testing import FakeClock

#: bounds every wait on a child process (its start imports quiv and anyio)
CHILD_WAIT = 60.0

#: a child that starts a scheduler on argv[1] with one job running and one
#: queued behind it (pool_size=1), prints their ids and its pid once both rows
#: are on disk, then dies without closing anything (argv[2] == "die") or waits
#: for a line on stdin and shuts down cleanly; in host mode, as processes sharing
#: a file must be
CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    import anyio
    from quiv import AsyncQuiv

    started = threading.Event()

    def long(_stop_event):
        started.set()
        _stop_event.wait()

    async def main():
        async with AsyncQuiv(
            db_path=sys.argv[1], pool_size=1, shutdown_timeout=10, host_mode=True
        ) as s:
            running = await s.add_task("long", long, run_once=True)
            queued = await s.add_task("queued", long, run_once=True)
            if not await anyio.to_thread.run_sync(started.wait, 30):
                raise SystemExit("the long job never started")
            (run,) = await s.get_all_jobs(task_id=running)
            (wait,) = await s.get_all_jobs(task_id=queued)
            await s.get_job(run.id)  # a read: every earlier write is committed
            ids = {"pid": os.getpid(), "running": run.id, "scheduled": wait.id,
                   "statuses": [run.status.value, wait.status.value]}
            print(json.dumps(ids), flush=True)
            if sys.argv[2] == "die":
                os._exit(1)
            await anyio.to_thread.run_sync(sys.stdin.readline)

    anyio.run(main)
    """
)


def _child(db: Path, mode: str) -> list[str]:
    return [sys.executable, "-c", CHILD, str(db), mode]


async def _read_line(process: Process) -> dict[str, Any]:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(CHILD_WAIT):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive()
    return json.loads(data)  # type: ignore[no-any-return]


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def _lock_files(db: Path) -> list[str]:
    return [name for name in os.listdir(db.parent) if name.startswith(f"{db.name}-owner-")]


# -- a process that died ----------------------------------------------------------------


async def test_jobs_of_a_killed_process_are_recorded_cancelled_at_the_next_start(
    tmp_path: Path,
) -> None:
    db = tmp_path / "q.db"
    result = await anyio.run_process(_child(db, "die"), check=False)
    assert result.returncode == 1, result.stderr.decode()
    child = json.loads(result.stdout)
    assert child["statuses"] == ["running", "scheduled"]
    pid = child["pid"]
    # the dead process left its rows in flight, its task rows and its lock file
    assert len(_rows(db, "SELECT id FROM tasks")) == 2
    assert _lock_files(db)

    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        ran = await s.get_job(child["running"])
        queued = await s.get_job(child["scheduled"])
        assert (await s.get_all_jobs(status="running")) == []
    assert ran.status is JobStatus.CANCELLED
    assert ran.error_message == f"process {pid} ended while the job was running"
    assert ran.cancel_reason is CancelReason.INTERRUPTED
    assert ran.ended_at is not None and ran.started_at is not None
    assert ran.ended_at >= ran.started_at
    assert queued.status is JobStatus.CANCELLED
    assert queued.error_message == f"process {pid} ended while the job was scheduled"
    assert queued.ended_at is not None
    # the dead process's schedule and registration are gone, its history stays
    assert _rows(db, "SELECT id FROM tasks") == []
    assert _rows(db, "SELECT id FROM owners") == []
    assert len(_rows(db, "SELECT id FROM jobs")) == 2
    assert not _lock_files(db)


async def test_a_live_process_sharing_the_file_keeps_its_jobs(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with await anyio.open_process(_child(db, "wait")) as process:
        try:
            child = await _read_line(process)
            async with AsyncQuiv(clock=FakeClock(), db_path=db, host_mode=True) as s:
                ran = await s.get_job(child["running"])
                queued = await s.get_job(child["scheduled"])
                assert (ran.status, queued.status) == (JobStatus.RUNNING, JobStatus.SCHEDULED)
                assert ran.error_message is None
            # the parent's clean close took only its own rows
            assert len(_rows(db, "SELECT id FROM tasks")) == 2
            assert len(_rows(db, "SELECT id FROM owners")) == 1
        finally:
            assert process.stdin is not None
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.send(b"stop\n")
            with anyio.fail_after(CHILD_WAIT):
                code = await process.wait()
    assert code == 0
    # the child shut down itself: its jobs say so, not "process ... ended"
    ((message,),) = _rows(db, "SELECT error_message FROM jobs WHERE id = ?", (child["running"],))
    assert message is not None and "ended while" not in message
    assert _rows(db, "SELECT id FROM owners") == []


async def test_a_second_store_in_the_same_process_is_not_reaped(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with running(SQLiteStore(db)) as first:
        first.put_task(make_task("t1"))
        first.put_job(make_job("j1", status=JobStatus.RUNNING, ended_at=None))
        await first.flush()
        async with running(SQLiteStore(db)) as second:
            job = await second.get_job("j1")
            assert job is not None and job.status is JobStatus.RUNNING
            assert [task.id for task in await second.get_tasks()] == ["t1"]
            assert first.owner != second.owner


# -- telling a live owner from a dead one ------------------------------------------------


def test_an_owner_is_alive_while_its_lock_is_held(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    db.touch(mode=0o600)
    owner = new_owner_id()
    assert not owner_alive(str(db), owner)  # no lock file: dead
    lock = OwnerLock.acquire(str(db), owner)
    path = Path(lock_path(str(db), owner))
    assert path.exists()
    assert path.stat().st_mode & 0o777 == 0o600  # the database's own mode bits
    assert owner_alive(str(db), owner)  # held by another open file of this process
    assert owner_alive(str(db), owner)  # and testing it does not disturb it
    lock.release()
    lock.release()
    assert not path.exists()
    assert not owner_alive(str(db), owner)
    assert new_owner_id() != new_owner_id()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_does_not_keep_a_dead_parent_alive(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    db.touch(mode=0o600)
    owner = new_owner_id()
    # the parent takes the lock, forks a child that lives on, and dies
    script = textwrap.dedent(
        """
        import os, signal, sys
        from quiv._store._owners import OwnerLock
        lock = OwnerLock.acquire(sys.argv[1], sys.argv[2])
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)  # let the parent's reader see the end of its output
            os.close(read)
            os.write(write, b"x")  # running, after the fork hooks
            signal.pause()  # until the test kills it
            os._exit(0)
        os.close(write)
        os.read(read, 1)
        print(pid, flush=True)
        os._exit(1)
        """
    )
    with anyio.fail_after(CHILD_WAIT):
        result = await anyio.run_process(
            [sys.executable, "-c", script, str(db), owner], check=False
        )
    assert result.returncode == 1, result.stderr.decode()
    grandchild = int(result.stdout)
    try:
        assert not owner_alive(str(db), owner)
    finally:
        os.kill(grandchild, signal.SIGKILL)


# -- upgrading a file of the previous schema ----------------------------------------------

V1_DDL = (
    """CREATE TABLE tasks (id TEXT PRIMARY KEY NOT NULL, task_name TEXT NOT NULL,
        args TEXT NOT NULL, kwargs TEXT NOT NULL, interval_seconds REAL,
        fixed_interval INTEGER NOT NULL, run_once INTEGER NOT NULL, status TEXT NOT NULL,
        next_run_at INTEGER, timeout_seconds REAL, max_retries INTEGER NOT NULL,
        retry_backoff_seconds REAL NOT NULL, retry_attempt INTEGER NOT NULL,
        jitter_seconds REAL NOT NULL, rerun_requested INTEGER NOT NULL)""",
    """CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, task_id TEXT NOT NULL,
        task_name TEXT NOT NULL, status TEXT NOT NULL, started_at INTEGER, ended_at INTEGER,
        duration_seconds REAL, error_message TEXT, attempt INTEGER NOT NULL,
        scheduled_at INTEGER)""",
)


def _files(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))


async def test_a_version_1_file_is_upgraded_and_loses_its_argument_strings(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    secret = "hunter2-" + new_owner_id()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA secure_delete = OFF")  # deleted rows linger in free space
        for statement in V1_DDL:
            conn.execute(statement)
        task = ("t1", "name", json.dumps([repr(secret)]), json.dumps({"k": repr(secret)}))
        for n in range(200):  # enough rows for pages of their own, most deleted again
            conn.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, 5.0, 1, 0, 'active', NULL, NULL,"
                " 0, 30.0, 0, 0.0, 0)",
                (f"{task[0]}-{n}", *task[1:]),
            )
        conn.execute("DELETE FROM tasks WHERE id != 't1-0'")
        now = int(time.time() * 1_000_000)  # recent: not pruned
        conn.execute(
            "INSERT INTO jobs VALUES ('ran', 't1', 'name', 'running', ?, NULL, NULL, NULL, 1, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO jobs VALUES ('done', 't1', 'name', 'completed', ?, ?, 1.0, NULL, 1, ?)",
            (now, now + 1, now),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    assert secret.encode() in _files(db)

    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        ran = await s.get_job("ran")
        done = await s.get_job("done")
    assert ran.status is JobStatus.CANCELLED
    assert ran.error_message == "the process ended while the job was running"
    assert ran.cancel_reason is CancelReason.INTERRUPTED
    assert (done.status, done.error_message) == (JobStatus.COMPLETED, None)
    assert (done.result, done.result_state, done.cancel_reason) == (None, None, None)
    assert _rows(db, "PRAGMA user_version") == [(4,)]
    columns = {row[1] for row in _rows(db, "PRAGMA table_info(tasks)")}
    assert not columns & {"args", "kwargs"}
    assert secret.encode() not in _files(db)


# -- nothing private on disk ------------------------------------------------------------


async def test_task_arguments_never_reach_the_file(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    secret = "s3cr3t-" + new_owner_id()
    in_kwargs = "kw-" + new_owner_id()

    def handler(*args: Any, **kwargs: Any) -> None:
        pass

    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        task_id = await s.add_task(
            "private",
            handler,
            interval=3600,
            delay=0,
            args=(secret, [secret], {"nested": secret}),
            kwargs={"token": in_kwargs, secret: 1},
        )
        (job,) = await s.get_all_jobs(task_id=task_id)  # a read: everything is committed
        await s.wait_for_job(job.id, timeout=WAIT)
        await s.get_job(job.id)
        on_disk = _files(db)
        task = await s.get_task(task_id)
        (listed,) = await s.get_all_tasks()
        for needle in (secret, in_kwargs):
            assert needle.encode() not in on_disk
            assert needle.encode("utf-16-le") not in on_disk
            with contextlib.closing(sqlite3.connect(db)) as conn:
                tables = [
                    name
                    for (name,) in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                ]
                for table in tables:
                    if table.startswith("sqlite_") or not table.isidentifier():
                        continue
                    for row in conn.execute(f"SELECT * FROM {table}"):  # names from SQLite
                        assert needle not in repr(row), (table, row)
    # the engine answers from memory, with the real values
    assert task.args == (secret, [secret], {"nested": secret})
    assert task.kwargs == {"token": in_kwargs, secret: 1}
    assert listed.args == task.args and listed.kwargs == task.kwargs
    assert secret.encode() not in _files(db)


async def test_a_file_system_without_locks_only_turns_crash_recovery_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(db_path: str, owner_id: str) -> OwnerLock:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(OwnerLock, "acquire", staticmethod(no_locks))
    logger, recorder = recording_logger()
    db = tmp_path / "q.db"
    async with running(SQLiteStore(db, logger=logger)) as store:
        store.put_job(make_job("j1", status=JobStatus.RUNNING, ended_at=None))
        job = await store.get_job("j1")
        assert job is not None and job.status is JobStatus.RUNNING
    assert any("cannot lock" in m for m in recorder.messages(logging.WARNING))
    assert _rows(db, "SELECT id FROM owners") == []


async def test_a_killed_runner_s_jobs_end_when_a_standby_takes_over(tmp_path: Path) -> None:
    """Host mode: the new runner reaps at once, and a wait for the dead runner's job ends."""
    db = tmp_path / "q.db"
    async with await anyio.open_process(_child(db, "wait")) as process:
        child = await _read_line(process)
        async with AsyncQuiv(clock=FakeClock(), db_path=db, host_mode=True) as s:
            assert not s.is_runner  # the child is
            process.kill()  # SIGKILL: it closes nothing
            with anyio.fail_after(CHILD_WAIT):
                await process.wait()
            job = await s.wait_for_job(child["running"], timeout=WAIT)
            assert job.status is JobStatus.CANCELLED
            assert job.cancel_reason is CancelReason.INTERRUPTED
            assert s.is_runner
            assert f"process {child['pid']} ended" in str(job.error_message)
