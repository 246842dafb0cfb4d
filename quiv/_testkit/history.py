"""``capture_events``: a scheduler's events in order, with assertions over them.

Each event is kept with the time the scheduler's clock showed when its
listener ran: under a :class:`~quiv.testing.VirtualClock` that is the
virtual time of the run (virtual time does not move while events wait to be
delivered), so "it ran at 02:30" can be asserted exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._checks import check_datetime, check_int
from .._errors import ConfigurationError
from .._events import Event
from .._models import Job, JobStatus, Task
from .clock import VirtualClock

if TYPE_CHECKING:
    from .._faces.async_face import AsyncQuiv
    from .._faces.sync_face import Quiv

__all__ = ("CapturedEvent", "EventLog", "capture_events")

_ENDS = (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED)
#: the reasons a run is skipped that the log can tell
SKIP_REASONS = ("misfire",)


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """One event, as a listener got it."""

    event: Event
    #: the task, as it was after the change the event tells of
    task: Task
    #: the job, for the ``JOB_*`` events
    job: Job | None
    #: the scheduler's clock when the listener ran (virtual time under a VirtualClock)
    at: datetime

    def __str__(self) -> str:
        job = "" if self.job is None else f" job {self.job.id} ({self.job.status.value})"
        return f"{self.at.isoformat()} {self.event.value} {self.task.task_name!r}{job}"


class EventLog(list[CapturedEvent]):
    """The events a :func:`capture_events` block saw, in order, with assertions.

    A task is named by its id or by its name. Every assertion raises
    :class:`AssertionError` with a message that shows what did happen.
    """

    def _matches(self, entry: CapturedEvent, task: str | None) -> bool:
        return task is None or task in (entry.task.id, entry.task.task_name)

    def runs(self, task: str | None = None) -> list[CapturedEvent]:
        """The ``JOB_STARTED`` events (of *task*, or of every task): the runs, in order."""
        return [e for e in self if e.event is Event.JOB_STARTED and self._matches(e, task)]

    def run_times(self, task: str | None = None) -> list[datetime]:
        """When the runs (of *task*) started, by the scheduler's clock."""
        return [entry.at for entry in self.runs(task)]

    def _story(self, task: str | None) -> str:
        lines = [f"  {entry}" for entry in self if self._matches(entry, task)]
        return "\n".join(lines) if lines else "  (no events)"

    def assert_ran(
        self,
        task: str,
        *,
        times: int | None = None,
        between: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Assert that *task* ran (started a job) *times* times, or at least once.

        :param between: count only runs that started in ``[first, last]``
            (inclusive; naive means UTC)
        """
        if times is not None:
            check_int(times, "times")
        runs = self._window(self.runs(task), between)
        if (times is None and runs) or len(runs) == times:
            return
        expected = "at least once" if times is None else f"{times} time(s)"
        window = "" if between is None else f" between {between[0]} and {between[1]}"
        raise AssertionError(
            f"expected {task!r} to run {expected}{window}; it ran {len(runs)} time(s)"
            f"{_at(runs)}. Its events:\n{self._story(task)}"
        )

    def assert_not_ran(
        self, task: str, *, between: tuple[datetime, datetime] | None = None
    ) -> None:
        """Assert that *task* never started a job (within *between*, if given)."""
        runs = self._window(self.runs(task), between)
        if runs:
            window = "" if between is None else f" between {between[0]} and {between[1]}"
            raise AssertionError(
                f"expected {task!r} not to run{window}; it ran {len(runs)} time(s)"
                f"{_at(runs)}. Its events:\n{self._story(task)}"
            )

    def assert_status(self, job_id: str, status: JobStatus | str) -> None:
        """Assert that the job *job_id* ended with *status* (``"completed"``, ...)."""
        try:
            wanted = JobStatus(status)
        except ValueError:
            raise ConfigurationError.bad_value("status", status, "a JobStatus") from None
        ends = [e for e in self if e.event in _ENDS and e.job is not None and e.job.id == job_id]
        if ends and ends[-1].job is not None and ends[-1].job.status is wanted:
            return
        seen = [e for e in self if e.job is not None and e.job.id == job_id]
        story = "\n".join(f"  {e}" for e in seen) or "  (no events of this job)"
        ended = "has not ended" if not ends else f"ended {ends[-1].event.value}"
        raise AssertionError(
            f"expected job {job_id} to end {wanted.value}; it {ended}. Its events:\n{story}"
        )

    def assert_skipped(
        self, task: str | None = None, *, reason: str = "misfire", times: int | None = None
    ) -> None:
        """Assert that runs (of *task*) were skipped: *times* of them, or at least one.

        :param reason: why: ``"misfire"``, a wall-clock run that came due later
            than the task's ``misfire_grace`` (the one reason quiv skips a run
            for; a run due while the task's job still runs is merged into one)
        """
        if reason not in SKIP_REASONS:
            raise ConfigurationError.bad_value("reason", reason, "'misfire'")
        if times is not None:
            check_int(times, "times")
        skips = [e for e in self if e.event is Event.TASK_RUN_SKIPPED and self._matches(e, task)]
        if (times is None and skips) or len(skips) == times:
            return
        expected = "at least one" if times is None else str(times)
        who = "any task" if task is None else repr(task)
        raise AssertionError(
            f"expected {expected} run(s) of {who} skipped ({reason}); {len(skips)} were"
            f"{_at(skips)}. The events:\n{self._story(task)}"
        )

    @staticmethod
    def _window(
        entries: list[CapturedEvent], between: tuple[datetime, datetime] | None
    ) -> list[CapturedEvent]:
        if between is None:
            return entries
        if not isinstance(between, tuple) or len(between) != 2:
            raise ConfigurationError.bad_value("between", between, "a (first, last) tuple")
        first = check_datetime(between[0], "between")
        last = check_datetime(between[1], "between")
        return [e for e in entries if first <= e.at <= last]


def _at(entries: list[CapturedEvent]) -> str:
    if not entries:
        return ""
    shown = ", ".join(e.at.isoformat() for e in entries[:10])
    return f" (at {shown}{', ...' if len(entries) > 10 else ''})"


@contextmanager
def capture_events(scheduler: AsyncQuiv | Quiv, *events: Event) -> Iterator[EventLog]:
    """Record *scheduler*'s events (all of them, or *events*) while the block runs.

    Yields an :class:`EventLog` that fills as the listeners run (on the
    main loop). After :func:`~quiv.testing.run_until_idle` or
    :meth:`VirtualClock.advance <quiv.testing.VirtualClock.advance>`, every
    event of the work they waited for is in it. Works with both faces.

    :raises ConfigurationError: if an item of *events* is not an :class:`~quiv.Event`
    """
    wanted = events or tuple(Event)
    for event in wanted:
        if not isinstance(event, Event):
            raise ConfigurationError.bad_value("events", event, "Event members")
    clock = scheduler.config.clock
    now: Callable[[], datetime]
    if isinstance(clock, VirtualClock):
        now = clock.wall_now
    else:
        now = _utcnow
    log = EventLog()

    def listener(event: Event, task: Task, job: Job | None = None, *_: Any) -> None:
        log.append(CapturedEvent(event, task, job, now()))

    for event in wanted:
        scheduler.add_listener(event, listener)
    try:
        yield log
    finally:
        for event in wanted:
            scheduler.remove_listener(event, listener)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
