"""AsyncQuiv's write side: what adding, changing, pausing, resuming, running
and removing a task, or cancelling a job, does to the engine.

Plain functions over the engine, on the scheduler's loop; none of them blocks.
Each changes a task's :class:`TaskState`, its timer entry and its record in
the store, and emits the matching event.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._checks import check_bool, check_number
from .._clock import LoopClock
from .._errors import ConfigurationError, TaskNotActiveError, TaskNotFoundError, TaskRunningError
from .._events import Event
from .._models import Task, TaskStatus
from .._triggers.interval import clamp_delay
from .queries import find_task
from .records import TaskState
from .task_checks import TaskUpdate

if TYPE_CHECKING:
    from .engine import Engine

__all__ = (
    "apply_update",
    "cancel_job",
    "pause_task",
    "register_task",
    "remove_task",
    "resume_task",
    "run_task_immediately",
)


def register_task(
    engine: Engine, task: TaskState, first_delay: float, requested_at: float | None = None
) -> None:
    """Add a prepared task to the engine.

    :param requested_at: ``time.monotonic()`` when another thread asked for
        it; the time the request took to arrive counts against the delay
    """
    if requested_at is not None and isinstance(engine.clock, LoopClock):
        first_delay = max(0.0, first_delay - (time.monotonic() - requested_at))
    deadline = engine.clock.now() + first_delay
    task.anchor = deadline
    engine.tasks[task.id] = task
    task.wall = engine.wall
    task.deadline = deadline
    if task.status is TaskStatus.PAUSED:  # paused before the scheduler started
        task.deadline = None
        task.pending_deadline = deadline  # where resume_task(delay=0) puts it
    _record(engine, task, Event.TASK_ADDED, new=True)
    if task.status is TaskStatus.PAUSED:
        pass
    elif first_delay > 0:
        engine.schedule(task, deadline)
    else:  # due now: skip the timer
        engine.dispatch(task, deadline)


def apply_update(engine: Engine, task: TaskState, update: TaskUpdate) -> None:
    """Apply a validated ``update_task`` request to *task*."""
    task.apply(update.settings)
    now = engine.clock.now()
    deadline: float | None = None
    if update.interval_changed:
        assert update.settings.interval is not None
        deadline = now + update.settings.interval
    elif update.run_at_delay is not None:
        deadline = now + update.run_at_delay
    if deadline is not None:
        task.anchor = deadline
        if task.run is not None:
            task.pending_deadline = deadline
        elif task.status is TaskStatus.PAUSED:
            task.pending_deadline = deadline
        else:
            engine.schedule(task, deadline)
    _record(engine, task, Event.TASK_UPDATED)


def remove_task(engine: Engine, task_id: str) -> None:
    """Remove a task, cancelling its job in flight."""
    task = find_task(engine, task_id)
    snapshot = task.snapshot()
    task.removed = True
    engine.unschedule(task)
    del engine.tasks[task.id]
    try:
        if task.run is not None:
            engine.cancel_run(task.run, "task removed")
        else:
            for waiter in engine.task_waiters.pop(task.id, []):
                waiter.set_exception(TaskNotFoundError(task.id))
    finally:
        _record(engine, task, Event.TASK_REMOVED, snapshot=snapshot, deleted=True)


def pause_task(engine: Engine, task_id: str) -> None:
    """Pause a task; its job in flight runs on, a pending rerun is dropped."""
    task = find_task(engine, task_id)
    engine.unschedule(task)
    task.status = TaskStatus.PAUSED
    task.rerun_requested = False
    _record(engine, task, Event.TASK_PAUSED)


def resume_task(engine: Engine, task_id: str, delay: float) -> None:
    """Make a task active again, its next run *delay* seconds from now."""
    task = find_task(engine, task_id)
    seconds = clamp_delay(check_number(delay, "delay"))
    if task.run is not None:
        raise TaskRunningError(f"task {task.id!r} has a job in flight; resume it after")
    deadline = task.pending_deadline
    task.pending_deadline = None
    if deadline is None or seconds:
        deadline = engine.clock.now() + seconds
    task.anchor = deadline
    engine.schedule(task, deadline)
    _record(engine, task, Event.TASK_RESUMED)


def run_task_immediately(engine: Engine, task_id: str, after_current: bool) -> None:
    """Run a task now, or right after its job in flight if *after_current*."""
    task = find_task(engine, task_id)
    check_bool(after_current, "after_current")
    if task.status is TaskStatus.PAUSED:
        raise TaskNotActiveError(f"task {task.id!r} is paused; resume it first")
    if task.run is not None:
        if not after_current or task.run_once:
            raise TaskRunningError(f"task {task.id!r} has a job in flight")
        task.rerun_requested = True
        _record(engine, task, None)
    else:
        engine.dispatch(task, engine.clock.now())


def cancel_job(engine: Engine, job_id: str) -> bool:
    """Cancel a queued or running job; ``False`` if it is not in flight."""
    if not isinstance(job_id, str):
        raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
    run = engine.jobs.get(job_id)
    if run is None:
        return False
    engine.cancel_run(run, "cancelled by cancel_job()")
    return True


def _record(
    engine: Engine,
    task: TaskState,
    event: Event | None,
    *,
    snapshot: Task | None = None,
    new: bool = False,
    deleted: bool = False,
) -> None:
    """Write *task*'s record (or its deletion) and emit *event* with its snapshot.

    Called once the operation took effect in memory, so it never raises:
    a record or an event that fails is logged, and the operation stands.
    """
    try:
        try:
            if deleted:
                engine.store.delete_task(task.id)
            else:
                engine.store.put_task(task, new=new)
        finally:
            if event is not None and engine.listeners.wants(event):
                engine.listeners.emit(engine.bridge, event, snapshot or task.snapshot())
    except Exception:
        engine.logger.exception(
            "quiv: recording %s of task %r (%s) failed",
            "a change" if event is None else event.value,
            task.task_name,
            task.id,
        )
