"""Tasks, jobs and statistics as the JSON the dashboard's page reads.

Every value a user controls (names, arguments, results, messages,
tracebacks) goes out as a plain JSON string; the page puts it in the DOM as
text, never as markup. Long values are cut to a bound, so one huge result
cannot make a page heavy.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from .._models import Job, QuivStats, Task

__all__ = ("job_json", "progress_bar", "stats_json", "task_json", "truncate")

#: the most characters of a result or a progress payload a job row carries
RESULT_CHARS = 300
#: the most characters of a traceback (quiv keeps the last 8 KiB of one)
TRACEBACK_CHARS = 8192


def truncate(text: str, limit: int) -> str:
    """*text*, cut to *limit* characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _as_text(value: Any, limit: int) -> str:
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):  # a circular structure, a key JSON refuses
        text = repr(value)
    return truncate(text, limit)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def progress_bar(payload: dict[str, Any] | None) -> dict[str, float] | None:
    """``{"done", "total", "fraction"}`` when *payload* has numbers to draw a bar with.

    ``done``/``total`` or ``progress``/``total``, with a positive total;
    else ``None`` (the page shows the payload as text only).
    """
    if not payload:
        return None
    total = _number(payload.get("total"))
    done = _number(payload.get("done", payload.get("progress")))
    if total is None or done is None or total <= 0:
        return None
    fraction = min(max(done / total, 0.0), 1.0)
    return {"done": done, "total": total, "fraction": fraction}


def task_json(task: Task) -> dict[str, Any]:
    """The fields of *task* the page shows."""
    return {
        "id": task.id,
        "name": task.task_name,
        "status": task.status.value,
        "schedule": task.description,
        "timezone": task.timezone,
        "next_run_at": _when(task.next_run_at),
        "run_once": task.run_once,
        "running_job_id": task.running_job_id,
        "last_job_id": task.last_job_id,
        "retry_attempt": task.retry_attempt,
        "skipped_runs": task.skipped_runs,
    }


def job_json(job: Job, *, detail: bool = False) -> dict[str, Any]:
    """The fields of *job* the page shows; with *detail*, the whole traceback too."""
    record: dict[str, Any] = {
        "id": job.id,
        "task_id": job.task_id,
        "task_name": job.task_name,
        "status": job.status.value,
        "attempt": job.attempt,
        "scheduled_at": _when(job.scheduled_at),
        "started_at": _when(job.started_at),
        "ended_at": _when(job.ended_at),
        "duration_seconds": job.duration_seconds,
        "progress": None if job.progress is None else _as_text(job.progress, RESULT_CHARS),
        "bar": progress_bar(job.progress),
        "result": None if job.result is None else _as_text(job.result, RESULT_CHARS),
        "error_type": job.error_type,
        "error_message": (
            None if job.error_message is None else truncate(job.error_message, RESULT_CHARS)
        ),
        "has_traceback": bool(job.traceback),
    }
    if detail:
        record["traceback"] = (
            None if job.traceback is None else truncate(job.traceback, TRACEBACK_CHARS)
        )
        record["cancel_reason"] = None if job.cancel_reason is None else job.cancel_reason.value
    return record


def stats_json(stats: QuivStats) -> dict[str, Any]:
    """The scheduler's summary."""
    return {
        "active_jobs": stats.active_jobs,
        "pool_size": stats.pool_size,
        "pool_utilization": stats.pool_utilization,
        "tasks_by_status": dict(stats.tasks_by_status),
        "next_run_at": _when(stats.next_run_at),
        "job_history_count": stats.job_history_count,
        "loop_alive": stats.loop_alive,
    }
