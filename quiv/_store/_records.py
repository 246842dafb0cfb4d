"""Records to rows and back: datetimes, owners, column order.

Datetimes are stored as integer microseconds since the Unix epoch (UTC): exact,
sortable and comparable in SQL. Naive datetimes are read as UTC. Every datetime
read back is timezone-aware UTC.

Handler arguments never reach a store, in any form: a task row holds the
schedule only, and a task read back from a store has empty ``args`` and
``kwargs`` (the engine answers task queries from memory, with the real
values). Every row written also names its owner (see
:mod:`quiv._store._owners`): the last column of :data:`TASK_WRITE_COLUMNS`
and :data:`JOB_WRITE_COLUMNS`, which reads leave out.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from .._models import CancelReason, Job, JobStatus, ResultState, Task, TaskStatus
from ._connection import Row

__all__ = (
    "JOB_COLUMNS",
    "JOB_WRITE_COLUMNS",
    "TASK_COLUMNS",
    "TASK_WRITE_COLUMNS",
    "from_micros",
    "job_from_row",
    "job_to_row",
    "normalize_job",
    "with_data",
    "stored_task",
    "task_from_row",
    "task_to_row",
    "to_micros",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

TASK_COLUMNS = (
    "id",
    "task_name",
    "interval_seconds",
    "fixed_interval",
    "run_once",
    "status",
    "next_run_at",
    "timeout_seconds",
    "max_retries",
    "retry_backoff_seconds",
    "retry_attempt",
    "jitter_seconds",
    "rerun_requested",
)

JOB_COLUMNS = (
    "id",
    "task_id",
    "task_name",
    "status",
    "started_at",
    "ended_at",
    "duration_seconds",
    "error_message",
    "attempt",
    "scheduled_at",
    "result",
    "result_state",
    "progress",
    "error_type",
    "traceback",
    "cancel_reason",
)

#: the columns a write fills: the read columns, then the owner
TASK_WRITE_COLUMNS = (*TASK_COLUMNS, "owner")
JOB_WRITE_COLUMNS = (*JOB_COLUMNS, "owner")


def to_utc(value: datetime) -> datetime:
    """Return *value* as an aware UTC datetime (naive values are read as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_micros(value: datetime | None) -> int | None:
    """Return *value* as integer microseconds since the epoch, or ``None``."""
    if value is None:
        return None
    return (to_utc(value) - _EPOCH) // _MICROSECOND


def from_micros(value: int | None) -> datetime | None:
    """Return an aware UTC datetime from :func:`to_micros`'s integer, or ``None``."""
    if value is None:
        return None
    return _EPOCH + timedelta(microseconds=int(value))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def task_to_row(task: Task, owner: str) -> Row:
    """Return *task*'s row in :data:`TASK_WRITE_COLUMNS` order (no arguments)."""
    return (
        str(task.id),
        str(task.task_name),
        _opt_float(task.interval_seconds),
        int(bool(task.fixed_interval)),
        int(bool(task.run_once)),
        TaskStatus(task.status).value,
        to_micros(task.next_run_at),
        _opt_float(task.timeout_seconds),
        int(task.max_retries),
        float(task.retry_backoff_seconds),
        int(task.retry_attempt),
        float(task.jitter_seconds),
        int(bool(task.rerun_requested)),
        owner,
    )


def task_from_row(row: Row) -> Task:
    """Build a :class:`Task` from a row in :data:`TASK_COLUMNS` order (empty arguments).

    :raises ValueError: if the row does not hold a valid task
    """
    return Task(
        id=row[0],
        task_name=row[1],
        args=(),
        kwargs={},
        interval_seconds=_opt_float(row[2]),
        fixed_interval=bool(row[3]),
        run_once=bool(row[4]),
        status=TaskStatus(row[5]),
        next_run_at=from_micros(row[6]),
        timeout_seconds=_opt_float(row[7]),
        max_retries=int(row[8]),
        retry_backoff_seconds=float(row[9]),
        retry_attempt=int(row[10]),
        jitter_seconds=float(row[11]),
        rerun_requested=bool(row[12]),
    )


def stored_task(task: Task) -> Task:
    """Return *task* as a store gives it back: no arguments, UTC datetimes."""
    return task_from_row(task_to_row(task, ""))


#: the longest progress payload written to a file, as JSON text (a longer one
#: is kept in memory only)
PROGRESS_CHARS = 65536


def _json_text(value: Any, limit: int | None = None) -> str | None:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return None if limit is not None and len(text) > limit else text


def _from_json(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def job_to_row(job: Job, owner: str, *, persist_data: bool = False) -> Row:
    """Return *job*'s row in :data:`JOB_WRITE_COLUMNS` order.

    The result is written (as JSON) only if its state is ``stored``, and the
    progress payload only with *persist_data* (a file the user asked for) and
    if JSON can represent it; otherwise both columns are ``NULL``.
    """
    state = None if job.result_state is None else ResultState(job.result_state)
    result = _json_text(job.result) if state is ResultState.STORED else None
    progress = (
        _json_text(job.progress, PROGRESS_CHARS)
        if persist_data and job.progress is not None
        else None
    )
    reason = None if job.cancel_reason is None else CancelReason(job.cancel_reason).value
    return (
        str(job.id),
        str(job.task_id),
        str(job.task_name),
        JobStatus(job.status).value,
        to_micros(job.started_at),
        to_micros(job.ended_at),
        _opt_float(job.duration_seconds),
        None if job.error_message is None else str(job.error_message),
        int(job.attempt),
        to_micros(job.scheduled_at),
        result,
        None if state is None else state.value,
        progress,
        None if job.error_type is None else str(job.error_type),
        None if job.traceback is None else str(job.traceback),
        reason,
        owner,
    )


def job_from_row(row: Row) -> Job:
    """Build a :class:`Job` from a row in :data:`JOB_COLUMNS` order.

    :raises ValueError: if the row does not hold a valid job
    """
    return Job(
        id=row[0],
        task_id=row[1],
        task_name=row[2],
        status=JobStatus(row[3]),
        started_at=from_micros(row[4]),
        ended_at=from_micros(row[5]),
        duration_seconds=_opt_float(row[6]),
        error_message=row[7],
        attempt=int(row[8]),
        scheduled_at=from_micros(row[9]),
        result=_from_json(row[10]),
        result_state=None if row[11] is None else ResultState(row[11]),
        progress=_from_json(row[12]),
        error_type=row[13],
        traceback=row[14],
        cancel_reason=None if row[15] is None else CancelReason(row[15]),
    )


def with_data(job: Job, result: Any, progress: dict[str, Any] | None) -> Job:
    """*job* holding the in-memory *result* and *progress* (not their JSON copies)."""
    if job.result is result and job.progress is progress:
        return job
    return dataclasses.replace(job, result=result, progress=progress)


def normalize_job(job: Job) -> Job:
    """Return *job* as a store gives it back (UTC datetimes, enum status), with
    its result and progress as they are (in memory)."""
    return with_data(job_from_row(job_to_row(job, "")), job.result, job.progress)
