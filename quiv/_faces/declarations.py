"""Tasks declared before the scheduler starts.

Apps declare their tasks at import time or early in their lifespan, before
``start()``. Until the scheduler runs there is no loop, no timer and no store,
so such tasks wait here: validated exactly as on a running scheduler, held in
order, and visible to ``get_task``/``get_all_tasks``. The scheduler hands
them to its engine when it starts (:meth:`Declarations.drain`); their delays
count from when they were declared, and one that is already due runs at once.

Any thread may call these methods (the sync face is used from anywhere); a
lock keeps them consistent with a concurrent start. Once drained, every
method raises :class:`Drained`, and the caller goes to the running scheduler
instead.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar

from .._checks import check_bool, check_number
from .._config import UNSET
from .._core.ids import fork_generation, new_id
from .._core.preview import preview_task
from .._core.queries import check_task_id, select_tasks
from .._core.records import TaskState, utcnow
from .._core.task_checks import first_fire, validate_update
from .._errors import TaskNotActiveError, TaskNotFoundError
from .._models import Task, TaskStatus
from .._triggers.interval import clamp_delay

__all__ = ("Declarations", "Drained")

T = TypeVar("T")


class Drained(Exception):
    """The scheduler has started (or stopped): declarations are closed."""


class Declarations:
    """The tasks of a scheduler that has not started yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: task id -> task; a task's ``deadline`` is its due time on
        #: ``time.monotonic()`` while it waits here
        self._tasks: dict[str, TaskState] = {}
        #: the wall-clock time each task is due, for ``next_run_at``
        self._due_wall: dict[str, datetime] = {}
        #: the fork generation each task was declared in: a run-once task's job
        #: id drawn before a fork (gunicorn --preload) is drawn again in each child
        self._generation: dict[str, int] = {}
        self._open = True

    def _locked(self, operation: Callable[[], T]) -> T:
        with self._lock:
            if not self._open:
                raise Drained
            return operation()

    def _find(self, task_id: object) -> TaskState:
        task = self._tasks.get(check_task_id(task_id))
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def _set_due(self, task: TaskState, delay: float, wall: datetime | None = None) -> None:
        """The task runs *delay* seconds from now; at exactly *wall*, if it is a wall time."""
        task.deadline = time.monotonic() + delay
        task.wall_due = wall
        self._due_wall[task.id] = wall or utcnow() + timedelta(seconds=delay)

    def _snapshot(self, task: TaskState) -> Task:
        return dataclasses.replace(task.snapshot(), next_run_at=self._due_wall[task.id])

    # -- the task methods --------------------------------------------------------

    def add(self, task: TaskState, first_delay: float) -> None:
        def add() -> None:
            self._tasks[task.id] = task
            self._generation[task.id] = fork_generation()
            self._set_due(task, first_delay, task.wall_due)

        self._locked(add)

    def update(self, task_id: str, changes: dict[str, Any], timezone: tzinfo) -> Task:
        """``update_task`` before start: *changes* are its keyword arguments.

        :param timezone: the scheduler's, for a new wall-clock trigger without its own
        """

        def update() -> Task:
            task = self._find(task_id)
            request = validate_update(task.settings(), task.func, **changes, timezone=timezone)
            task.apply(request.settings)
            if request.trigger is not UNSET:
                task.set_trigger(request.trigger)
            if request.run_at is not None:
                delay = clamp_delay((request.run_at - utcnow()).total_seconds())
                self._set_due(task, delay, request.run_at)
            elif task.trigger is not None and request.trigger is not UNSET:
                self._set_due(task, *first_fire(task.trigger))
            elif request.interval_changed:
                assert request.settings.interval is not None
                self._set_due(task, request.settings.interval)
            return self._snapshot(task)

        return self._locked(update)

    def remove(self, task_id: str) -> None:
        def remove() -> None:
            task = self._find(task_id)
            del self._tasks[task.id], self._due_wall[task.id]

        self._locked(remove)

    def pause(self, task_id: str) -> None:
        def pause() -> None:
            self._find(task_id).status = TaskStatus.PAUSED

        self._locked(pause)

    def resume(self, task_id: str, delay: object) -> None:
        seconds = clamp_delay(check_number(delay, "delay"))

        def resume() -> None:
            task = self._find(task_id)
            task.status = TaskStatus.ACTIVE
            self._set_due(task, seconds)

        self._locked(resume)

    def run_now(self, task_id: str, after_current: object) -> None:
        """``run_task_immediately`` before start: the task runs as soon as it starts."""
        check_bool(after_current, "after_current")

        def run_now() -> None:
            task = self._find(task_id)
            if task.status is TaskStatus.PAUSED:
                raise TaskNotActiveError(f"task {task.id!r} is paused; resume it first")
            self._set_due(task, 0.0)

        self._locked(run_now)

    def preview(self, task_id: str, n: int, after: datetime | None) -> list[datetime]:
        """``preview`` of a declared task (its runs as they stand, from *after* or now)."""

        def preview() -> list[datetime]:
            task = self._find(task_id)
            return preview_task(task, n, after or utcnow(), next_run=self._due_wall[task.id])

        return self._locked(preview)

    def get(self, task_id: str) -> Task:
        return self._locked(lambda: self._snapshot(self._find(task_id)))

    def select(
        self,
        include_run_once: bool,
        status: TaskStatus | str | None,
        limit: int | None,
        offset: int,
        task_name: str | None,
    ) -> list[Task]:
        def select() -> list[Task]:
            tasks = select_tasks(
                self._tasks.values(), include_run_once, status, limit, offset, task_name
            )
            return [self._snapshot(task) for task in tasks]

        return self._locked(select)

    # -- start -------------------------------------------------------------------

    def drain(self) -> list[tuple[TaskState, float]]:
        """Close the declarations; return each task with the delay left to its run.

        Called once, by the start of the scheduler; later calls return nothing.
        """
        with self._lock:
            self._open = False
            tasks, self._tasks, self._due_wall = self._tasks, {}, {}
            generations, self._generation = self._generation, {}
        now = time.monotonic()
        generation = fork_generation()
        drained = []
        for task in tasks.values():
            if task.next_job_id is not None and generations.get(task.id) != generation:
                task.next_job_id = new_id()  # declared before a fork: this process's own
            assert task.deadline is not None
            drained.append((task, max(0.0, task.deadline - now)))
            task.deadline = None
        return drained
