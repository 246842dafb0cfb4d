"""AsyncQuiv's read side: lookups, filters and paging, stats, and waits for jobs.

Plain functions over the engine, on the scheduler's loop. They check their
arguments and read the engine's state or its store; the only state they
change is the waiter lists of ``wait_for_job`` and ``wait_for_task``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from .._checks import check_bool, check_datetime, check_int, check_number
from .._errors import ConfigurationError, JobNotFoundError, TaskNotFoundError
from .._models import Job, JobStatus, QuivStats, TaskStatus
from .._store._base import JobQuery
from .._xthread.mailbox import Future
from .records import TaskState

if TYPE_CHECKING:
    from .engine import Engine

__all__ = (
    "check_task_id",
    "find_task",
    "get_job",
    "job_query",
    "select_tasks",
    "stats_snapshot",
    "wait_for_job",
    "wait_for_task",
)

_ORDER_BY = ("started_at", "ended_at", "scheduled_at")


def check_task_id(task_id: object) -> str:
    """*task_id*, if it is a string.

    :raises ConfigurationError: if it is not
    """
    if not isinstance(task_id, str):
        raise ConfigurationError.bad_value("task_id", task_id, "a task id string")
    return task_id


def find_task(engine: Engine, task_id: object) -> TaskState:
    """The live task *task_id*.

    :raises TaskNotFoundError: for an unknown task
    """
    task = engine.tasks.get(check_task_id(task_id))
    if task is None:
        raise TaskNotFoundError(task_id)
    return task


def select_tasks(
    candidates: Iterable[TaskState],
    include_run_once: bool,
    status: TaskStatus | str | None,
    limit: int | None,
    offset: int,
    task_name: str | None,
) -> list[TaskState]:
    """The page of tasks ``get_all_tasks`` returns, ordered by next run."""
    check_bool(include_run_once, "include_run_once")
    wanted = None if status is None else _enum_value(TaskStatus, status, "status")
    if task_name is not None and not isinstance(task_name, str):
        raise ConfigurationError.bad_value("task_name", task_name, "a str or None")
    start, stop = _page(limit, offset)
    tasks = [
        task
        for task in candidates
        if (include_run_once or not task.run_once)
        and (wanted is None or task.status is wanted)
        and (task_name is None or task.task_name == task_name)
    ]
    tasks.sort(key=lambda t: (t.deadline is None, t.deadline or 0.0))
    return tasks[start:stop]


def job_query(
    status: JobStatus | str | None,
    task_id: str | None,
    since: datetime | None,
    until: datetime | None,
    order_by: str,
    descending: bool,
    limit: int | None,
    offset: int,
) -> JobQuery:
    """Check the filters of ``get_all_jobs``; return them as a store query."""
    wanted = None if status is None else _enum_value(JobStatus, status, "status")
    if task_id is not None and not isinstance(task_id, str):
        raise ConfigurationError.bad_value("task_id", task_id, "a task id string or None")
    if order_by not in _ORDER_BY:
        raise ConfigurationError.bad_value("order_by", order_by, f"one of {_ORDER_BY}")
    check_bool(descending, "descending")
    return JobQuery(
        status=wanted,
        task_id=task_id,
        since=None if since is None else check_datetime(since, "since"),
        until=None if until is None else check_datetime(until, "until"),
        order_by=order_by,  # type: ignore[arg-type]
        descending=descending,
        limit=None if limit is None else check_int(limit, "limit"),
        offset=check_int(offset, "offset"),
    )


async def get_job(engine: Engine, job_id: str) -> Job:
    """A job's record from the store.

    :raises JobNotFoundError: for an unknown or pruned job
    """
    if not isinstance(job_id, str):
        raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
    job = await engine.store.get_job(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


async def wait_for_job(engine: Engine, job_id: str, timeout: float | None) -> Job:
    """Wait until a job ends (at once for a job that already ended)."""
    limit = _timeout(timeout)
    if not isinstance(job_id, str):
        raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
    run = engine.jobs.get(job_id)
    if run is None:
        return await get_job(engine, job_id)
    waiter: Future[Job] = Future()
    run.waiters.append(waiter)
    return await _wait(waiter, limit, run.waiters)


async def wait_for_task(engine: Engine, task_id: str, timeout: float | None) -> Job:
    """Wait for the next job of a task to end, or return a finished run-once task's."""
    if isinstance(task_id, str) and task_id not in engine.tasks:
        finished = engine.finished_job(task_id)
        if finished is not None:  # a run-once task that already ran
            _timeout(timeout)
            return finished
    task = find_task(engine, task_id)
    limit = _timeout(timeout)
    waiter: Future[Job] = Future()
    waiters = engine.task_waiters.setdefault(task.id, [])
    waiters.append(waiter)
    try:
        return await _wait(waiter, limit, waiters)
    finally:
        if not waiters and engine.task_waiters.get(task.id) is waiters:
            del engine.task_waiters[task.id]  # the last waiter gave up


def stats_snapshot(engine: Engine, job_history_count: int, *, loop_alive: bool) -> QuivStats:
    """The in-memory figures of ``stats``, all from this moment."""
    by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
    next_runs: list[datetime] = []
    for task in engine.tasks.values():
        by_status[task.status.value] += 1
        if task.next_run_at is not None and task.status is TaskStatus.ACTIVE:
            next_runs.append(task.next_run_at)
    return QuivStats(
        active_jobs=len(engine.jobs),
        pool_size=engine.pool_size,
        pool_utilization=min(1.0, engine.running / engine.pool_size),
        tasks_by_status=by_status,
        next_run_at=min(next_runs, default=None),
        job_history_count=job_history_count,
        loop_alive=loop_alive,
    )


def _enum_value(enum: Any, value: object, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum)
        raise ConfigurationError.bad_value(name, value, f"one of {choices}") from None


def _page(limit: object, offset: object) -> tuple[int, int | None]:
    start = check_int(offset, "offset")
    if limit is None:
        return start, None
    return start, start + check_int(limit, "limit")


def _timeout(timeout: object) -> float:
    if timeout is None:
        return math.inf
    return check_number(timeout, "timeout", allow_inf=True)


async def _wait(waiter: Future[Job], limit: float, registry: list[Future[Job]]) -> Job:
    try:
        with anyio.fail_after(limit):
            await waiter.wait_settled()
    finally:
        if not waiter.done and waiter in registry:
            registry.remove(waiter)
    return waiter.result()
