"""What a job's end means: its final status, and when its task runs next.

Pure functions of a job's outcome and its task's settings, on the scheduler's
loop. :class:`~quiv._core.engine.Engine` applies what they decide.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from .._models import CancelReason, Job, JobStatus, ResultState
from .._triggers.interval import IntervalSchedule, next_run, retry_delay
from .._triggers.wall import check_fire
from .._typing import Logger
from .._xthread.runner import Outcome
from .records import JobRun, TaskState, utcnow
from .settings import NOT_ASKED

__all__ = (
    "ABANDONED_REASON",
    "FinishedOnce",
    "SHUTDOWN_REASON",
    "classify",
    "describe_error",
    "next_deadline",
    "next_wall_fire",
    "settle",
    "use_fire",
)

SHUTDOWN_REASON = "scheduler shut down"
ABANDONED_REASON = "abandoned at shutdown: the handler was still running"


def describe_error(error: BaseException) -> str:
    """``"Type: message"`` for a job's record (the type alone if the message is empty)."""
    try:
        text = str(error)
    except Exception:  # the user's __str__ failed: the type still says what happened
        text = "<message unavailable: its __str__ raised>"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def classify(run: JobRun, outcome: Outcome | None) -> tuple[JobStatus, str | None]:
    """The final status and message of *run*, ended with *outcome*.

    ``None`` means it never reported an end: cancelled before its handler
    started, or abandoned at shutdown while it ran.
    """
    control = run.control
    if outcome is None and control.started:
        return JobStatus.CANCELLED, ABANDONED_REASON
    if outcome is None or not outcome.started or control.cancelled or outcome.cancelled:
        return JobStatus.CANCELLED, control.cancel_reason or "cancelled"
    if outcome.error is not None:
        return JobStatus.FAILED, describe_error(outcome.error)
    return JobStatus.COMPLETED, None


def settle(
    run: JobRun,
    outcome: Outcome | None,
    *,
    stopping: bool,
    max_result_bytes: int,
    persistent: bool,
    logger: Logger,
) -> None:
    """Give *run* its final status, reason, result, error details, end and duration.

    :param stopping: the scheduler is shutting down (a cancel is its doing)
    :param max_result_bytes: a result whose JSON is longer is not kept (and logged)
    :param persistent: the store writes JSON results to a file the user named
    """
    run.status, run.error_message = classify(run, outcome)
    if run.status is JobStatus.CANCELLED:
        if run.cancel_reason is None:
            run.cancel_reason = CancelReason.SHUTDOWN if stopping else CancelReason.CANCELLED
    else:  # a cancel came too late: the job ended on its own
        run.cancel_reason = None
    if outcome is not None:
        if run.status is JobStatus.COMPLETED and outcome.result is not None:
            _keep_result(run, outcome, max_result_bytes, persistent, logger)
        elif run.status is JobStatus.FAILED:
            run.error_type, run.traceback = outcome.error_type, outcome.traceback
    run.ended_at = utcnow()
    if outcome is not None and outcome.duration is not None:
        run.duration = outcome.duration
    elif run.started_at is not None:
        run.duration = (run.ended_at - run.started_at).total_seconds()


def _keep_result(
    run: JobRun, outcome: Outcome, max_bytes: int, persistent: bool, logger: Logger
) -> None:
    """Keep what *run*'s handler returned, unless its JSON is over *max_bytes*."""
    size = outcome.result_size
    if size < 0:  # JSON cannot represent it: in memory only, never on disk
        run.result, run.result_state = outcome.result, ResultState.NOT_JSON
    elif size > max_bytes:
        run.result_state = ResultState.TOO_LARGE
        logger.warning(
            "quiv: the result of job %s of task %r is not kept: %d bytes of JSON,"
            " more than max_result_bytes=%d",
            run.id,
            run.task.task_name,
            size,
            max_bytes,
        )
    else:
        run.result = outcome.result
        run.result_state = ResultState.STORED if persistent else ResultState.MEMORY


def next_deadline(
    task: TaskState, status: JobStatus, now: float, wall_now: Callable[[], datetime]
) -> tuple[float | datetime | None, bool, bool]:
    """When *task* runs next after a job that ended with *status* at *now*.

    Updates the task's retry count and consumes a requested rerun or a
    pending ``run_at``. Return ``(when, retrying, skipped)``: *when* is a
    deadline on the scheduler's clock, a wall-clock time (a trigger's fire),
    or ``None`` when the task is done (a run-once task, or a trigger with no
    more fires); *skipped* says a run was skipped for ``misfire_grace``.

    :param wall_now: the wall-clock time that corresponds to *now*
    :raises ConfigurationError: if the task's trigger returns a bad fire
    """
    retrying = status is JobStatus.FAILED and task.retry_attempt < task.max_retries
    deadline: float | None = None
    if retrying:
        task.retry_attempt += 1
        deadline = now + retry_delay(task.retry_backoff, task.retry_attempt)
    else:
        task.retry_attempt = 0
    if task.rerun_requested:
        task.rerun_requested = False
        deadline = now
    elif task.pending_deadline is not None:
        deadline, task.pending_deadline = task.pending_deadline, None
    elif deadline is None and task.trigger is not None:
        fire, skipped = next_wall_fire(task, wall_now())
        return fire, retrying, skipped
    elif deadline is None and not task.run_once:
        assert task.interval is not None
        schedule = IntervalSchedule(task.interval, task.fixed_interval, task.anchor)
        jitter = random.uniform(0.0, task.jitter) if task.jitter else 0.0
        deadline = next_run(schedule, ended=now, jitter=jitter)
    return deadline, retrying, False


def next_wall_fire(task: TaskState, wall_now: datetime) -> tuple[datetime | None, bool]:
    """The wall-clock time of the next run of *task*, which has a wall-clock trigger.

    The trigger's next fire that no run has used (see
    :attr:`~quiv._core.tasks.TaskState.upcoming_fire`); the first is asked
    for once, when the task is added or given the trigger. Fires missed
    meanwhile (the job overran them, the task was paused, the process was
    suspended) make **one** run, at once (at *wall_now*), not one per missed
    fire; unless the latest of them is more than the task's
    ``misfire_grace`` late, in which case that run is skipped (counted in
    ``skipped_runs``) and the next fire is the next one after *wall_now*.

    Return ``(when, skipped)``; *when* is ``None`` when there are no more fires.

    :raises ConfigurationError: if the trigger returns a bad fire
    """
    trigger = task.trigger
    assert trigger is not None
    fire = task.upcoming_fire
    if fire is NOT_ASKED:
        fire = task.upcoming_fire = check_fire(trigger, wall_now, trigger.next_fire(wall_now))
    if fire is None or fire > wall_now:
        return fire, False
    grace = task.misfire_grace
    if grace is None:
        return wall_now, False
    start = wall_now - timedelta(seconds=grace)
    if fire >= start:  # the first missed fire is within the grace
        return wall_now, False
    recent = check_fire(trigger, start, trigger.next_fire(start))
    if recent is not None and recent <= wall_now:  # a later one is
        return wall_now, False
    # None in (start, wall_now]: recent is the first fire after wall_now too
    task.count_skipped_run()
    task.upcoming_fire = recent
    return recent, True


def use_fire(task: TaskState, due: datetime, wall_now: datetime) -> None:
    """A run of *task* for the wall-clock time *due* comes due at *wall_now*: use up its fire.

    The next fire is the trigger's first after *due*, unless that one has
    passed too: the run is late and stands for it (and any others missed),
    so the first after *wall_now*. A fault of the trigger leaves the task to
    ask afresh, which reports it.
    """
    trigger = task.trigger
    assert trigger is not None
    try:
        later = check_fire(trigger, due, trigger.next_fire(due))
        if later is not None and later <= wall_now:
            later = check_fire(trigger, wall_now, trigger.next_fire(wall_now))
    except Exception:
        later = NOT_ASKED
    task.upcoming_fire = later


class FinishedOnce:
    """The last jobs of run-once tasks that finished moments ago, for ``wait_for_task``.

    Kept only long enough to close the "add, then wait" race: at most
    :attr:`LIMIT` entries, each for *keep* seconds (at most a minute, and no
    longer than the job history is kept).
    """

    LIMIT = 1_000

    def __init__(self, keep: float) -> None:
        self._keep = keep
        #: task id -> (last job, forget at)
        self._jobs: OrderedDict[str, tuple[Job, float]] = OrderedDict()

    def remember(self, task_id: str, job: Job, now: float) -> None:
        jobs = self._jobs
        while jobs:
            oldest = next(iter(jobs.values()))
            if oldest[1] > now and len(jobs) < self.LIMIT:
                break
            jobs.popitem(last=False)
        if self._keep > 0:
            jobs[task_id] = (job, now + self._keep)

    def get(self, task_id: str, now: float) -> Job | None:
        entry = self._jobs.get(task_id)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]
