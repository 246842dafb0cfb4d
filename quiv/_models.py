"""Public records: task and job snapshots, statuses, statistics, configuration.

Every record is a frozen dataclass of plain values, so ``dataclasses.asdict``
turns it into something ``json.dumps`` accepts (with ``default=str`` for the
datetimes). Datetimes are always timezone-aware UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import Enum
from os import PathLike
from typing import Any

__all__ = (
    "CancelReason",
    "Job",
    "JobStatus",
    "QuivConfig",
    "QuivStats",
    "ResultState",
    "Task",
    "TaskStatus",
)


class TaskStatus(str, Enum):
    """Where a task (a schedule) stands."""

    #: waiting for its next run
    ACTIVE = "active"
    #: one of its jobs is queued or running
    RUNNING = "running"
    #: paused by :meth:`~quiv.AsyncQuiv.pause_task`; no new jobs start
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value


class JobStatus(str, Enum):
    """Where a job (one run of a task) stands."""

    #: created and waiting for a worker
    SCHEDULED = "scheduled"
    #: its handler is running
    RUNNING = "running"
    #: the handler returned
    COMPLETED = "completed"
    #: cancelled (by request, timeout, task removal or shutdown); see ``error_message``
    CANCELLED = "cancelled"
    #: the handler raised; see ``error_message``
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """``True`` for ``completed``, ``cancelled`` and ``failed``."""
        return self in _FINAL_JOB_STATUSES


class ResultState(str, Enum):
    """Where a job's :attr:`~Job.result` is kept (``Job.result_state``).

    Results are kept in memory with the job history and pruned with it. Only
    with a persistent store (``db_path=``) are they also written to disk, and
    only as JSON: quiv never pickles.
    """

    #: in memory, and written to the ``db_path`` file as JSON (read back after a restart)
    STORED = "stored"
    #: in memory only: the store is the private temporary one (``db_path=None``)
    MEMORY = "memory"
    #: in memory only: JSON cannot represent the value (it is never written to disk)
    NOT_JSON = "not_json"
    #: dropped, as its JSON text is larger than ``max_result_bytes``: ``result`` is ``None``
    TOO_LARGE = "too_large"

    def __str__(self) -> str:
        return self.value


class CancelReason(str, Enum):
    """Why a job was cancelled (``Job.cancel_reason``); ``error_message`` says it in words."""

    #: by :meth:`~quiv.AsyncQuiv.cancel_job`, or the handler cancelled itself
    CANCELLED = "cancelled"
    #: it ran longer than its task's ``timeout``
    TIMED_OUT = "timed_out"
    #: its task was removed while the job was queued or running
    TASK_REMOVED = "task_removed"
    #: the scheduler shut down (the job was queued, cancelled, or abandoned)
    SHUTDOWN = "shutdown"
    #: the process that ran it ended without shutting down (found at the next start)
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


_FINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.FAILED})


@dataclass(frozen=True, slots=True)
class Task:
    """A snapshot of a task: a schedule that produces jobs."""

    id: str
    task_name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    interval_seconds: float | None
    fixed_interval: bool
    run_once: bool
    status: TaskStatus
    #: when the next job is due (``None`` while paused or running)
    next_run_at: datetime | None
    timeout_seconds: float | None
    max_retries: int
    retry_backoff_seconds: float
    #: how many retries of the current run have been scheduled (0 after a success)
    retry_attempt: int
    jitter_seconds: float
    #: ``run_task_immediately(after_current=True)`` is pending
    rerun_requested: bool
    #: the ``repr`` of the task's wall-clock trigger (cron, calendar interval or
    #: your own); ``None`` for an interval or a single run
    trigger: str | None = None
    #: the wall-clock trigger's time zone (an IANA name such as ``"Europe/Berlin"``)
    timezone: str | None = None
    #: the schedule in words, e.g. ``"At 02:30 on Monday through Friday (Europe/Berlin)"``
    description: str = ""
    #: a wall-clock run that comes due more than this late is skipped (``None``: never)
    misfire_grace_seconds: float | None = None
    #: runs skipped for coming due later than ``misfire_grace_seconds``
    skipped_runs: int = 0
    #: the id of the job in flight (queued or running), else ``None``
    running_job_id: str | None = None
    #: the id of the task's latest job, in flight or ended (``None`` before the first)
    last_job_id: str | None = None
    #: a run-once task's job id, known as soon as ``add_task`` returns (so a
    #: ``202`` response can carry it) and kept while that job runs; a retry
    #: shows the retry's. ``None`` for recurring tasks. A task that already
    #: ended is gone: then ``wait_for_task(task_id)`` returns its job
    next_job_id: str | None = None
    #: the schedule's stable name, given with ``add_task(key=...)`` (``None`` if none);
    #: the task's id is derived from it (kept in memory only: stored task rows
    #: read back ``None``)
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of a job: one run of a task."""

    id: str
    task_id: str
    task_name: str
    status: JobStatus
    #: when the handler started (``None`` if it never started)
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    #: why the job failed or was cancelled
    error_message: str | None
    #: 1 for the first try, 2 for the first retry, ...
    attempt: int
    #: when the job was created (its task came due)
    scheduled_at: datetime | None = None
    #: what the handler returned (``None`` until it completed; see :attr:`result_state`).
    #: Typed ``Any``: narrow it with ``isinstance`` or ``typing.cast``; read back
    #: from a ``db_path`` file after a restart, it is what JSON made of it
    #: (tuples are lists, dict keys strings)
    result: Any = None
    #: where :attr:`result` is kept; ``None`` when there is none (the handler
    #: returned ``None``, or the job did not complete)
    result_state: ResultState | None = None
    #: the last payload the job sent with ``_progress_hook(**payload)`` or
    #: ``current_job().progress(**payload)``, or ``None``
    progress: dict[str, Any] | None = None
    #: a failed job's exception type: its qualified name, with its module
    #: unless a builtin (``"ValueError"``, ``"myapp.errors.Timeout"``)
    error_type: str | None = None
    #: a failed job's formatted traceback (its last 8 KiB)
    traceback: str | None = None
    #: why a cancelled job was cancelled
    cancel_reason: CancelReason | None = None


@dataclass(frozen=True, slots=True)
class QuivStats:
    """A point-in-time summary returned by :meth:`~quiv.AsyncQuiv.stats`."""

    #: jobs queued or running (in host mode, in every process of the host)
    active_jobs: int
    #: this scheduler's pool (each process of a host has its own)
    pool_size: int
    #: running handlers / pool size, between 0.0 and 1.0
    pool_utilization: float
    #: how many tasks have each status (in host mode, the host's tasks)
    tasks_by_status: Mapping[str, int]
    #: the earliest ``next_run_at`` of all active tasks (of the host, in host mode)
    next_run_at: datetime | None
    #: job records in the store (finished ones included, until pruned)
    job_history_count: int
    #: the scheduler's loop is running and accepting work
    loop_alive: bool


@dataclass(frozen=True, slots=True)
class QuivConfig:
    """Scheduler settings, an alternative to the constructor's keyword arguments.

    Passing ``config`` together with any explicit setting is a
    :class:`~quiv.ConfigurationError`.
    """

    #: how many handlers may run at once
    pool_size: int = 10
    #: finished jobs older than this are pruned from the history
    history_retention_seconds: float = 86400
    #: the time zone of wall-clock schedules (cron, calendar intervals) that
    #: name none; every datetime quiv returns is UTC all the same
    timezone: str | tzinfo = "UTC"
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
    #: ``None``: a private temporary SQLite file removed at shutdown
    db_path: str | PathLike[str] | None = None
    #: event loop backend for async handlers' worker loops; ``None`` = the host's
    worker_backend: str | None = None
    #: monotonic clock for deadlines (tests inject a fake one)
    clock: Any = field(default=None, repr=False)
    #: how long ``shutdown`` waits for running jobs when no timeout is given
    shutdown_timeout: float | None = None
    #: the largest result kept on a job, in bytes of its JSON text; a larger
    #: one is dropped (``Job.result_state`` says ``"too_large"``) with a warning
    max_result_bytes: int = 65536
    #: the processes of one host share ``db_path``: recurring schedules run in
    #: one of them (the runner), and every one reads the host's history
    host_mode: bool = False
