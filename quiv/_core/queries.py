"""The read side's checks and computations: filters and paging, stats, waits.

Pure helpers for :class:`~quiv._core.engine.Engine` and the faces: they check
arguments and compute answers from the data they are given; none of them
changes the engine's state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import anyio

from .._checks import check_bool, check_datetime, check_int, check_number
from .._errors import ConfigurationError, JobNotFoundError
from .._host.link import Elsewhere
from .._models import Job, JobStatus, QuivStats, TaskStatus
from .._xthread.mailbox import Future
from ..abc import JobQuery, Store
from .records import TaskState

__all__ = (
    "check_delay",
    "check_flag",
    "check_task_id",
    "check_timeout",
    "get_job",
    "job_query",
    "select_tasks",
    "stats_snapshot",
    "wait",
)

_ORDER_BY = ("started_at", "ended_at", "scheduled_at")


def check_task_id(task_id: object) -> str:
    """*task_id*, if it is a string.

    :raises ConfigurationError: if it is not
    """
    if not isinstance(task_id, str):
        raise ConfigurationError.bad_value("task_id", task_id, "a task id string")
    return task_id


def check_delay(delay: object) -> float:
    """A ``resume_task`` delay: a number of seconds >= 0."""
    return check_number(delay, "delay")


def check_flag(value: object, name: str) -> bool:
    """A ``bool`` parameter."""
    return check_bool(value, name)


def check_timeout(timeout: object) -> float:
    """A wait's timeout in seconds (``None`` is no limit)."""
    if timeout is None:
        return math.inf
    return check_number(timeout, "timeout", allow_inf=True)


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


async def get_job(store: Store, job_id: object) -> Job:
    """A job's record from *store*.

    :raises JobNotFoundError: for an unknown or pruned job
    """
    if not isinstance(job_id, str):
        raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
    job = await store.get_job(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def stats_snapshot(
    tasks: Mapping[str, TaskState],
    *,
    active_jobs: int,
    running: int,
    pool_size: int,
    job_history_count: int,
    loop_alive: bool,
    elsewhere: Elsewhere | None = None,
) -> QuivStats:
    """``stats()`` from figures all taken at one moment.

    In host mode *elsewhere* adds the other processes' tasks and jobs in
    flight. A task declared here too (a keyed schedule every worker
    declares) counts once, as this process sees it, except that a
    schedule with no next run here (a standby's, held for the runner)
    takes the next run another process wrote for it.
    """
    by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
    next_runs: list[datetime] = []
    for task in tasks.values():
        by_status[task.status.value] += 1
        if task.next_run_at is not None and task.status is TaskStatus.ACTIVE:
            next_runs.append(task.next_run_at)
    if elsewhere is not None:
        active_jobs += elsewhere.active_jobs
        for task_id, status, next_run in elsewhere.tasks:
            here = tasks.get(task_id)
            if here is None:
                by_status[status.value] += 1
            elif here.status is not TaskStatus.ACTIVE or here.next_run_at is not None:
                continue
            if status is TaskStatus.ACTIVE and next_run is not None:
                next_runs.append(next_run)
    return QuivStats(
        active_jobs=active_jobs,
        pool_size=pool_size,
        pool_utilization=min(1.0, running / pool_size),
        tasks_by_status=by_status,
        next_run_at=min(next_runs, default=None),
        job_history_count=job_history_count,
        loop_alive=loop_alive,
    )


async def wait(waiter: Future[Job], limit: float, registry: list[Future[Job]]) -> Job:
    """Wait for *waiter* up to *limit* seconds; leave *registry* if giving up."""
    try:
        with anyio.fail_after(limit):
            await waiter.wait_settled()
    finally:
        if not waiter.done and waiter in registry:
            registry.remove(waiter)
    return waiter.result()


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
