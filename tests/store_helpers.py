"""Shared helpers for the store tests: record factories, a running store, probes."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio

from quiv import Job, JobStatus, Task, TaskStatus
from quiv._store._connection import Connection, Row, open_connection
from quiv.abc import Store

#: far in the future, so background pruning (which uses the real clock) never sees it
T0 = datetime(2099, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """``T0`` plus *seconds*."""
    return T0 + timedelta(seconds=seconds)


def make_job(
    job_id: str | None = None,
    *,
    task_id: str = "task-1",
    status: JobStatus = JobStatus.COMPLETED,
    started_at: datetime | None = T0,
    ended_at: datetime | None = None,
    scheduled_at: datetime | None = T0,
    **fields: Any,
) -> Job:
    """A job with sensible defaults (``ended_at`` follows ``started_at`` for final jobs)."""
    if ended_at is None and status.is_final and started_at is not None:
        ended_at = started_at + timedelta(seconds=1)
    values: dict[str, Any] = {
        "id": job_id or str(uuid.uuid4()),
        "task_id": task_id,
        "task_name": f"name of {task_id}",
        "status": status,
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_seconds": None if ended_at is None else 1.0,
        "error_message": None,
        "attempt": 1,
        "scheduled_at": scheduled_at,
    }
    values.update(fields)
    return Job(**values)


def make_task(task_id: str = "task-1", **fields: Any) -> Task:
    """A task with sensible defaults."""
    values: dict[str, Any] = {
        "id": task_id,
        "task_name": f"name of {task_id}",
        "args": (),
        "kwargs": {},
        "interval_seconds": 5.0,
        "fixed_interval": True,
        "run_once": False,
        "status": TaskStatus.ACTIVE,
        "next_run_at": T0,
        "timeout_seconds": None,
        "max_retries": 0,
        "retry_backoff_seconds": 30.0,
        "retry_attempt": 0,
        "jitter_seconds": 0.0,
        "rerun_requested": False,
    }
    values.update(fields)
    return Task(**values)


def job_lifecycle(job: Job) -> list[Job]:
    """The three states the engine puts for one job: scheduled, running, completed."""
    scheduled = replace(job, status=JobStatus.SCHEDULED, started_at=None, ended_at=None)
    running = replace(job, status=JobStatus.RUNNING, ended_at=None, duration_seconds=None)
    return [scheduled, running, replace(job, status=JobStatus.COMPLETED)]


@asynccontextmanager
async def running(store: Store) -> AsyncIterator[Any]:
    """Start *store* in a task group for the block, then close it."""
    async with anyio.create_task_group() as tg:
        await store.start(tg)
        try:
            yield store
        finally:
            await store.aclose()


class LogRecorder(logging.Handler):
    """Collects log records; :meth:`wait_for` waits (on the loop) for a matching one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    async def wait_for(self, predicate: Callable[[logging.LogRecord], bool]) -> None:
        while not any(predicate(record) for record in self.records):
            await self._changed.wait()


def recording_logger() -> tuple[logging.Logger, LogRecorder]:
    """A fresh, non-propagating logger and the recorder attached to it."""
    logger = logging.getLogger(f"quiv.tests.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    recorder = LogRecorder()
    logger.addHandler(recorder)
    return logger, recorder


class ProbeConnection(Connection):
    """Wraps a real connection: counts rows and calls, injects failures on demand."""

    def __init__(self, inner: Connection) -> None:
        super().__init__()
        self.inner = inner
        self.executemany_calls = 0
        self.rows_written = 0
        #: the next N ``executemany`` calls raise this error
        self.fail_writes = 0
        #: the next N ``fetchall`` calls raise this error
        self.fail_reads = 0
        self.error = sqlite3.OperationalError("database or disk is full")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self.inner.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise self.error
        batch = list(rows)
        self.executemany_calls += 1
        self.rows_written += len(batch)
        await self.inner.executemany(sql, batch)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise self.error
        return await self.inner.fetchall(sql, params)

    async def close(self) -> None:
        await self.inner.close()


async def probe_factory(path: str) -> Connection:
    """A ``connection_factory`` that wraps the default connection in a probe."""
    return ProbeConnection(await open_connection(path))
