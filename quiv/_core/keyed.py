"""Keyed schedules and host mode: which process runs a schedule, and which fire it runs.

A task added with ``key=`` is a *keyed schedule*. With a store that other
runs share (``db_path=``), each of its fires is **claimed** in the store
before it runs (:meth:`~quiv.abc.Store.claim_fire`: a unique row per key and
fire time, written with the key's last fire in one transaction), so a fire
runs once however many processes have the schedule; and a schedule declared
again after a restart counts on from its **last fire**, so the restart
neither runs it again nor skips it (missed fires make one catch-up run,
as after a misfire).

In **host mode** one process of the host is the runner (see
:mod:`quiv._host.runner`); in the others (standbys) a recurring task that
comes due is *held* here instead of run, and armed again when the process
becomes the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

from anyio.abc import TaskGroup

from .._clock import WallClock
from .._errors import JobNotFoundError, SchedulerStoppedError
from .._host.link import CANCEL, HostLink
from .._models import Job, JobStatus, TaskStatus
from .._triggers.wall import check_fire
from .._typing import Logger
from .._xthread.mailbox import Future
from ..abc import Clock, Store
from .outcomes import use_fire
from .records import TaskState
from .settings import NOT_ASKED
from .timing import Timer

__all__ = ("HostSchedules", "Scheduling")


class Scheduling(Protocol):
    """What :class:`HostSchedules` uses of the engine."""

    clock: Clock
    wall: WallClock
    timer: Timer
    store: Store
    logger: Logger
    tasks: dict[str, TaskState]

    def wall_now(self) -> datetime: ...

    def _first_fire(self, task: TaskState) -> datetime | None: ...

    def _next_wall_run(self, task: TaskState, skipped: bool = False) -> None: ...

    def _run_due(self, task: TaskState, wall_due: datetime | None) -> None: ...


class HostSchedules:
    """The keyed schedules of one engine, and its part in the host's runner role."""

    def __init__(self, engine: Scheduling, *, standby: bool, claims: bool) -> None:
        self._engine = engine
        #: host mode, and another process is the runner: recurring tasks do not run here
        self.standby = standby
        #: fires of keyed schedules are claimed in the store, which other runs share
        self.claims = claims
        #: recurring tasks that came due while :attr:`standby`, by id (armed at promotion)
        self.held: dict[str, TaskState] = {}
        #: the last claimed fire of each keyed schedule, as the store knows it
        self.last_fires: dict[str, datetime] = {}
        #: gives up the host's runner role (host mode), once the jobs have ended
        self.release_runner: Callable[[], None] = lambda: None
        #: the commands between the host's processes (host mode)
        self.link: HostLink | None = None
        self._task_group: TaskGroup | None = None
        #: callers of ``wait_for_job`` waiting for a job of another process, by job id
        self.remote_waiters: dict[str, list[Future[Job]]] = {}
        #: claims of fires under way (a due run waits for its claim; quiv.testing waits too)
        self.claiming = 0

    def connect(self, link: HostLink, task_group: TaskGroup) -> None:
        """Host mode: take commands from the other processes through *link*."""
        self.link, self._task_group = link, task_group

    def cancel_elsewhere(self, job_id: str) -> bool:
        """Host mode: ask the process that runs *job_id* to cancel it.

        ``False`` if the host's history does not show it in flight in
        another process (its record is written with its store's next batch,
        a few milliseconds after it starts).
        """
        link, group = self.link, self._task_group
        if link is None or group is None:
            return False
        owner = link.job_owner(job_id)
        if owner is None or owner == link.owner:
            return False
        group.start_soon(self._send, link, owner, job_id)
        return True

    def may_run_elsewhere(self, job: Job) -> bool:
        """Host mode: whether *job*, not one of this process's, was read in flight."""
        return self.link is not None and job.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)

    def elsewhere(self, job: Job) -> bool:
        """Host mode: whether *job* is in flight in another process of the host, now."""
        link = self.link
        if link is None or not self.may_run_elsewhere(job):
            return False
        owner = link.job_owner(job.id)
        return owner is not None and owner != link.owner

    def wait_elsewhere(self, job_id: str) -> tuple[Future[Job], list[Future[Job]]]:
        """Host mode: a future for the end of *job_id*, in flight in another process.

        Settled by :meth:`changed`, when the host's history shows the job
        ended. Return it with the list it is registered in (to leave on a
        timeout).
        """
        waiter: Future[Job] = Future()
        waiters = self.remote_waiters.setdefault(job_id, [])
        waiters.append(waiter)
        return waiter, waiters

    def changed(self) -> None:
        """Host mode: another process wrote to the file; settle the waits for its jobs that ended."""
        link, group = self.link, self._task_group
        if link is None or group is None:
            return
        for job_id, waiters in list(self.remote_waiters.items()):
            if not waiters:
                del self.remote_waiters[job_id]
            elif link.job_owner(job_id) is None:  # no longer in flight
                del self.remote_waiters[job_id]
                group.start_soon(self._settle, job_id, waiters)

    async def _settle(self, job_id: str, waiters: list[Future[Job]]) -> None:
        try:
            job = await self._engine.store.get_job(job_id)
            error: BaseException | None = None if job is not None else JobNotFoundError(job_id)
        except Exception as exc:
            job, error = None, exc
        for waiter in waiters:
            if error is not None:
                waiter.set_exception(error)
            elif job is not None:
                waiter.set_result(job)

    def stop_waits(self) -> None:
        """The scheduler stops: fail the waits for other processes' jobs."""
        waiters = [w for group in self.remote_waiters.values() for w in group]
        self.remote_waiters.clear()
        for waiter in waiters:
            waiter.set_exception(SchedulerStoppedError("the scheduler was shut down"))

    async def _send(self, link: HostLink, owner: str, job_id: str) -> None:
        try:
            await link.send(owner, CANCEL, job_id)
        except Exception:
            self._engine.logger.exception("quiv: could not send the cancel of job %s", job_id)

    async def load(self) -> None:
        """Read the keyed schedules' last fires from the store (at the start)."""
        if self.claims:
            self.last_fires = await self._engine.store.last_fires()

    def last_fire(self, task: TaskState) -> datetime | None:
        """When *task*'s schedule last fired, if it is keyed and has fired before."""
        key = task.key
        return None if key is None else self.last_fires.get(key)

    def resume(self, task: TaskState, last: datetime) -> datetime | None:
        """The first run of keyed *task*, whose schedule last fired at *last*.

        Its next fire after *last*; if that has passed (the process was down,
        or the old runner died), one catch-up run now, as after a misfire.
        ``None`` means no wall-clock time (a trigger with no fire left: the
        task then runs once at once and ends, as any such trigger does).
        """
        engine = self._engine
        if task.trigger is not None:
            task.upcoming_fire = check_fire(task.trigger, last, task.trigger.next_fire(last))
            return engine._first_fire(task)
        assert task.interval is not None
        return max(engine.wall_now(), last + timedelta(seconds=task.interval))

    def grid_anchor(self, task: TaskState, last: datetime) -> float:
        """The origin of keyed interval *task*'s grid, continuing the one that fired at *last*.

        On the scheduler's clock, the grid point one interval after *last*
        (it may have passed): the runs after a catch-up stay in the old
        grid's slots, so no slot gets two runs when the runner changes.
        """
        engine = self._engine
        assert task.interval is not None
        due = last + timedelta(seconds=task.interval)
        return engine.clock.now() + (due - engine.wall_now()).total_seconds()

    def hold(self, task: TaskState) -> bool:
        """In a standby: keep *task*, due now, for the runner; ``False`` if it runs here.

        Run-once tasks run in the process that added them: their handler lives there.
        """
        if not self.standby or task.run_once:
            return False
        task.deadline = None
        self.held[task.id] = task
        return True

    def records(self, task: TaskState) -> bool:
        """Whether this process writes *task*'s record to the store.

        A standby leaves the records of keyed schedules, which every worker
        declares, to the runner: the host's file shows the runner's view of
        them (its next runs), not the held copies of the standbys.
        """
        return not (self.standby and task.key is not None and not task.run_once)

    def forget(self, task_id: str) -> None:
        """*task_id* was removed: hold it no more."""
        self.held.pop(task_id, None)

    def promote(self, last_fires: dict[str, datetime] | None = None) -> None:
        """This process became the host's runner: arm the recurring tasks held here.

        A keyed task runs at its next fire after its last claimed one (see
        :meth:`resume`); any other at its trigger's next fire after now, or
        one interval from now: a run the old runner may have made is not made
        again.

        :param last_fires: the store's last fires, read just before
        """
        engine = self._engine
        self.standby = False
        if last_fires is not None:
            self.last_fires = last_fires
        held, self.held = self.held, {}
        now = engine.clock.now()
        for task in held.values():
            if task.removed or task.run is not None or task.entry is not None:
                continue
            if task.status is not TaskStatus.ACTIVE:
                continue
            last = self.last_fire(task)
            if last is not None:
                try:
                    when = self.resume(task, last)
                except Exception:
                    engine.logger.exception("quiv: the trigger of task %r failed", task.task_name)
                    when = None
                if when is not None:
                    if task.interval is not None:
                        task.anchor = self.grid_anchor(task, last)
                    engine.timer.schedule_wall(task, when)
                    continue
            if task.trigger is not None:
                task.set_trigger(task.trigger)  # counted from now, not from the held fire
                engine._next_wall_run(task)
            elif task.interval is not None:
                task.anchor = now + task.interval
                engine.timer.schedule(task, task.anchor)
        for task in engine.tasks.values():  # the runner's view of them, from now on
            if task.key is not None and not task.run_once:
                engine.store.put_task(task)

    def needs_claim(self, task: TaskState) -> bool:
        """Whether a run of *task* waits for its fire's claim in the store."""
        return self.claims and task.key is not None and not task.run_once

    def fire_of(self, task: TaskState, wall_due: datetime | None) -> datetime:
        """The fire a run of keyed *task*, due now, stands for: what the store claims.

        A trigger's fire (the earliest missed one, for a catch-up run), else
        the wall-clock time it came due, to the millisecond (an interval's
        grid, which a new runner continues from the last fire).
        """
        upcoming = task.upcoming_fire
        if (
            wall_due is not None
            and upcoming is not None
            and upcoming is not NOT_ASKED
            and upcoming <= wall_due
        ):
            return upcoming
        if wall_due is not None:
            return wall_due
        assert task.deadline is not None
        stamp = round(self._engine.wall.timestamp(task.deadline), 3)
        return datetime.fromtimestamp(stamp, timezone.utc)

    def start_claim(
        self, task_group: TaskGroup, task: TaskState, wall_due: datetime | None
    ) -> None:
        """Start :meth:`claim_then_run` in *task_group*; :attr:`claiming` counts it from now."""
        self.claiming += 1

        async def claim() -> None:
            try:
                await self.claim_then_run(task, wall_due)
            finally:
                self.claiming -= 1

        task_group.start_soon(claim, name=f"quiv: claim a fire of {task.key!r}")

    async def claim_then_run(self, task: TaskState, wall_due: datetime | None) -> None:
        """Claim the fire of keyed *task* that is due now; run the task if this process got it."""
        engine = self._engine
        key = task.key
        assert key is not None
        fire = self.fire_of(task, wall_due)
        try:
            claimed = await engine.store.claim_fire(key, fire)
        except Exception:
            engine.logger.exception(
                "quiv: could not claim the fire at %s of schedule %r; it does not run here",
                fire,
                key,
            )
            claimed = False
        if task.removed or task.run is not None or engine.tasks.get(task.id) is not task:
            return  # removed, or the user ran it meanwhile (its end arms the next run)
        if claimed:
            previous = self.last_fires.get(key)
            if previous is None or fire > previous:
                self.last_fires[key] = fire
            engine._run_due(task, wall_due)
            return
        # another process ran this fire (or the store failed): the next one, without a job
        engine.logger.info(
            "quiv: the fire at %s of schedule %r was claimed elsewhere; not run here", fire, key
        )
        if task.trigger is not None:
            if wall_due is not None:
                use_fire(task, wall_due, engine.wall_now())
            engine._next_wall_run(task)
        elif task.interval is not None:
            engine.timer.schedule(task, engine.clock.now() + task.interval)
