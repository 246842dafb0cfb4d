"""The public API against a model, in random order (hypothesis stateful testing).

A :class:`~hypothesis.stateful.RuleBasedStateMachine` drives an ``AsyncQuiv``
(on asyncio, then on trio) through add / pause / resume / remove / update /
run now / cancel / finish a job / move the fake clock, and keeps a simple
model of what must happen: which tasks exist, their status, which of them has
a job in flight, when each is due, how each job ends. After every step it
checks that

* a task never overlaps itself (handlers count their own concurrency),
* every job ends in exactly one terminal state, the one the model predicts
  (with the predicted message), and no job starts that the model did not expect,
* task statuses, retry counters, rerun flags and statistics match the model,
* nothing raises outside the :class:`~quiv.QuivError` hierarchy, and the
  errors raised are the predicted ones.

The scheduler runs on a loop thread (anyio's blocking portal); time is a
:class:`~quiv.testing.FakeClock`, so the model knows every deadline exactly. Handlers
block until the machine releases them (or their job is cancelled), so the
model always knows what is running. Every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from anyio.lowlevel import current_token
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    Job,
    JobStatus,
    QuivError,
    Task,
    TaskNotActiveError,
    TaskNotFoundError,
    TaskRunningError,
    TaskStatus,
)
from quiv._core.outcomes import SHUTDOWN_REASON
from quiv.testing import FakeClock

WAIT = 10.0
MAX_TASKS = 5
BACKOFF = 7.0
PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)
FAILURE = "ValueError: asked to fail"


# -- handlers and what they report ------------------------------------------------------


class Control:
    """Shared by the handlers (worker threads), the listeners (the scheduler's
    loop) and the machine (the test's thread)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cond = threading.Condition()
        self.concurrency: dict[str, int] = {}
        self.overlaps: list[str] = []
        self.outcomes: dict[str, str] = {}
        self.gates: dict[str, threading.Event] = {}
        self.async_waiters: dict[str, tuple[Any, anyio.Event]] = {}
        #: task id -> ids of its jobs, in JOB_STARTED order
        self.started: dict[str, list[str]] = {}
        #: job id -> terminal events seen
        self.ends: dict[str, list[tuple[Event, Job]]] = {}

    # handlers ---------------------------------------------------------------------

    def enter(self, key: str) -> None:
        with self.cond:
            count = self.concurrency.get(key, 0) + 1
            self.concurrency[key] = count
            if count > 1:
                self.overlaps.append(key)

    def leave(self, key: str) -> None:
        with self.cond:
            self.concurrency[key] -= 1

    def gate(self, job_id: str) -> threading.Event:
        with self.cond:
            return self.gates.setdefault(job_id, threading.Event())

    def outcome(self, job_id: str) -> str:
        with self.cond:
            return self.outcomes[job_id]

    def wait_async(self, job_id: str, event: anyio.Event) -> bool:
        """Register an async handler's event; False if already released."""
        with self.cond:
            if job_id in self.outcomes:
                return False
            self.async_waiters[job_id] = (current_token(), event)
            return True

    def release(self, job_id: str, outcome: str) -> None:
        with self.cond:
            self.outcomes[job_id] = outcome
            waiter = self.async_waiters.pop(job_id, None)
        self.gate(job_id).set()
        if waiter is not None:
            token, event = waiter
            try:
                anyio.from_thread.run_sync(event.set, token=token)
            except anyio.RunFinishedError:
                pass  # the job's loop ended meanwhile (it was cancelled)

    # listeners --------------------------------------------------------------------

    def on_started(self, event: Event, task: Task, job: Job) -> None:
        with self.cond:
            self.started.setdefault(task.id, []).append(job.id)
            self.cond.notify_all()

    def on_end(self, event: Event, task: Task, job: Job) -> None:
        with self.cond:
            self.ends.setdefault(job.id, []).append((event, job))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), f"timed out waiting for {what}"


CONTROL = Control()


def sync_handler(key: str, _job_id: str, _stop_event: threading.Event) -> None:
    CONTROL.enter(key)
    try:
        gate = CONTROL.gate(_job_id)
        while not gate.wait(0.002):
            if _stop_event.is_set():
                return  # cancelled: the scheduler records it so
        if CONTROL.outcome(_job_id) == "fail":
            raise ValueError("asked to fail")
    finally:
        CONTROL.leave(key)


async def async_handler(key: str, _job_id: str) -> None:
    CONTROL.enter(key)
    try:
        event = anyio.Event()
        if CONTROL.wait_async(_job_id, event):
            await event.wait()  # a cancellation of the job stops it here
        if CONTROL.outcome(_job_id) == "fail":
            raise ValueError("asked to fail")
    finally:
        CONTROL.leave(key)


# -- the model ------------------------------------------------------------------------


@dataclass
class MJob:
    task_key: str
    attempt: int
    started: float
    timeout_at: float | None
    id: str | None = None
    #: how the model expects it to end: (status, message), once decided
    ending: tuple[JobStatus, str | None] | None = None


@dataclass
class MTask:
    key: str
    id: str
    run_once: bool
    interval: float | None
    fixed: bool
    timeout: float | None
    max_retries: int
    paused: bool = False
    deadline: float | None = None
    anchor: float = 0.0
    retry_attempt: int = 0
    rerun: bool = False
    pending: float | None = None
    job: MJob | None = None
    jobs_started: int = 0

    @property
    def status(self) -> TaskStatus:
        if self.paused:
            return TaskStatus.PAUSED
        return TaskStatus.RUNNING if self.job is not None else TaskStatus.ACTIVE


def next_slot(anchor: float, interval: float, now: float) -> float:
    k = max(0, math.floor((now - anchor) / interval) + 1)
    while anchor + k * interval <= now:
        k += 1
    return anchor + k * interval


@dataclass
class Expected:
    """What a call must do: return normally, or raise exactly this error."""

    error: type[QuivError] | None = None


# -- the machine --------------------------------------------------------------------


class SchedulerMachine(RuleBasedStateMachine):
    backend = "asyncio"

    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        CONTROL.reset()
        self.stack = ExitStack()
        self.portal = self.stack.enter_context(
            anyio.from_thread.start_blocking_portal(self.backend)
        )
        self.clock: FakeClock = self.portal.call(_make_clock)
        self.scheduler = AsyncQuiv(clock=self.clock, pool_size=MAX_TASKS + 1, shutdown_timeout=WAIT)
        before = time.time()
        self.stack.enter_context(self.portal.wrap_async_context_manager(self.scheduler))
        #: bounds of the wall-clock time at which the fake clock read 0
        # (a FakeClock's wall time starts on the whole second before the start)
        self.started = (math.floor(before), time.time())
        s = self.scheduler
        self.portal.call(s.add_listener, Event.JOB_STARTED, CONTROL.on_started)
        for event in (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED):
            self.portal.call(s.add_listener, event, CONTROL.on_end)
        self.now = 0.0
        self.model: dict[str, MTask] = {}  # live tasks by key
        self.gone: dict[str, MTask] = {}  # removed or finished tasks by key
        self.ended: list[MJob] = []
        self.count = 0

    # plumbing ------------------------------------------------------------------------

    def call(self, expected: Expected, method: str, *args: Any, **kwargs: Any) -> Any:
        func = getattr(self.scheduler, method)
        try:
            result = self.portal.call(lambda: _maybe_await(func(*args, **kwargs)))
        except QuivError as exc:
            assert expected.error is not None, f"{method} raised {exc!r}"
            assert type(exc) is expected.error, f"{method} raised {exc!r}, not {expected.error}"
            return None
        except BaseException as exc:
            raise AssertionError(f"{method} raised outside QuivError: {exc!r}") from exc
        assert expected.error is None, f"{method} returned {result!r}, expected {expected.error}"
        return result

    def task(self, key: str) -> MTask | None:
        return self.model.get(key)

    def task_id(self, key: str) -> str:
        task = self.model.get(key) or self.gone[key]
        return task.id

    # model transitions -----------------------------------------------------------------

    def dispatch(self, task: MTask) -> None:
        task.deadline = None
        task.jobs_started += 1
        timeout_at = None if task.timeout is None else self.now + task.timeout
        task.job = MJob(task.key, task.retry_attempt + 1, self.now, timeout_at)

    def schedule(self, task: MTask, deadline: float) -> None:
        task.paused = False
        task.deadline = deadline

    def after_job(self, task: MTask, status: JobStatus) -> None:
        task.job = None
        if task.key not in self.model:
            return
        retrying = status is JobStatus.FAILED and task.retry_attempt < task.max_retries
        deadline: float | None = None
        if retrying:
            task.retry_attempt += 1
            deadline = self.now + BACKOFF * 2 ** (task.retry_attempt - 1)
        else:
            task.retry_attempt = 0
        if task.rerun:
            task.rerun = False
            deadline = self.now
        elif task.pending is not None:
            deadline, task.pending = task.pending, None
        elif deadline is None and not task.run_once:
            assert task.interval is not None
            if task.fixed:
                deadline = next_slot(task.anchor, task.interval, self.now)
            else:
                deadline = self.now + task.interval
        if deadline is None:
            self.gone[task.key] = self.model.pop(task.key)
            return
        if task.paused:
            task.deadline = None
            task.pending = None
        else:
            self.schedule(task, deadline)

    def end(self, job: MJob, status: JobStatus, message: str | None) -> None:
        if job.ending is None:
            job.ending = (status, message)

    # synchronising with the scheduler ------------------------------------------------

    def settle(self) -> None:
        """Let every predicted effect happen, then check the scheduler matches."""
        self.portal.call(_turns)  # the timer has seen the clock and dispatched
        while True:
            # jobs the model says have ended (released, cancelled, timed out)
            for task in [*self.model.values(), *self.gone.values()]:
                job = task.job
                if job is not None and job.ending is not None:
                    self.check_end(job)
                    self.after_job(task, job.ending[0])
            due = [
                t
                for t in self.model.values()
                if t.job is None and not t.paused and t.deadline is not None
                if t.deadline <= self.now
            ]
            for task in due:
                self.dispatch(task)
            self.learn_job_ids()
            timed_out = [
                t.job
                for t in self.model.values()
                if t.job is not None and t.job.ending is None and t.job.timeout_at is not None
                if t.job.timeout_at <= self.now
            ]
            for job in timed_out:
                task = self.model[job.task_key]
                self.end(job, JobStatus.CANCELLED, f"timed out after {task.timeout:g} s")
            if not due and not timed_out:
                break
        self.portal.call(_turns)  # an unexpected dispatch would show by now
        self.check_state()

    def learn_job_ids(self) -> None:
        for task in self.model.values():
            job = task.job
            if job is None or job.id is not None:
                continue
            count = task.jobs_started
            CONTROL.wait_for(
                lambda t=task, n=count: len(CONTROL.started.get(t.id, ())) >= n,
                f"job {count} of {task.key} to start",
            )
            job.id = CONTROL.started[task.id][count - 1]

    def check_end(self, job: MJob) -> None:
        assert job.id is not None and job.ending is not None
        final: Job = self.call(Expected(), "wait_for_job", job.id, WAIT)
        status, message = job.ending
        assert final.status is status, (job, final)
        assert final.error_message == message, (job, final)
        assert final.attempt == job.attempt, (job, final)
        CONTROL.wait_for(lambda: job.id in CONTROL.ends, f"the end event of {job.id}")
        self.ended.append(job)

    def check_state(self) -> None:
        with CONTROL.cond:
            assert CONTROL.overlaps == [], f"tasks overlapped themselves: {CONTROL.overlaps}"
            for job_id, ends in CONTROL.ends.items():
                assert len(ends) == 1, f"job {job_id} ended {len(ends)} times: {ends}"
        for task in [*self.model.values(), *self.gone.values()]:
            with CONTROL.cond:
                started = len(CONTROL.started.get(task.id, ()))
            assert started == task.jobs_started, f"{task.key}: {started} jobs started"
        tasks = {t.id: t for t in self.call(Expected(), "get_all_tasks", True)}
        assert set(tasks) == {t.id for t in self.model.values()}
        by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
        for task in self.model.values():
            real = tasks[task.id]
            assert real.status is task.status, (task, real)
            assert real.retry_attempt == task.retry_attempt, (task, real)
            assert real.rerun_requested == task.rerun, (task, real)
            assert real.interval_seconds == task.interval, (task, real)
            assert (real.next_run_at is None) == (task.deadline is None), (task, real)
            if real.next_run_at is not None and task.deadline is not None:
                # fake time maps onto the wall clock from the scheduler's start
                lowest, highest = (bound + task.deadline for bound in self.started)
                assert lowest <= real.next_run_at.timestamp() <= highest, (task, real)
            by_status[task.status.value] += 1
            if task.job is not None:
                assert task.job.id is not None
                job = self.call(Expected(), "get_job", task.job.id)
                assert job.status is JobStatus.RUNNING, (task, job)
        stats = self.call(Expected(), "stats")
        assert stats.tasks_by_status == by_status
        assert stats.active_jobs == sum(t.job is not None for t in self.model.values())
        for task in self.gone.values():
            self.call(Expected(TaskNotFoundError), "get_task", task.id)

    # rules ------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.settle()

    @precondition(lambda self: len(self.model) < MAX_TASKS)
    @rule(
        target=tasks,
        run_once=st.booleans(),
        interval=st.sampled_from([10.0, 25.0]),
        fixed=st.booleans(),
        delay=st.sampled_from([0.0, 0.0, 5.0, 40.0]),
        timeout=st.sampled_from([None, None, 30.0]),
        max_retries=st.sampled_from([0, 0, 1, 2]),
        is_async=st.booleans(),
    )
    def add(
        self,
        run_once: bool,
        interval: float,
        fixed: bool,
        delay: float,
        timeout: float | None,
        max_retries: int,
        is_async: bool,
    ) -> str:
        self.count += 1
        key = f"t{self.count}"
        task_id = self.call(
            Expected(),
            "add_task",
            key,
            async_handler if is_async else sync_handler,
            interval=None if run_once else interval,
            delay=delay,
            run_once=run_once,
            fixed_interval=fixed,
            args=(key,),
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=BACKOFF,
        )
        task = MTask(
            key,
            task_id,
            run_once,
            None if run_once else interval,
            fixed,
            timeout,
            max_retries,
            anchor=self.now + delay,
        )
        self.model[key] = task
        if delay > 0:
            self.schedule(task, self.now + delay)
        else:
            self.dispatch(task)
        self.settle()
        return key

    @rule(key=tasks)
    def pause(self, key: str) -> None:
        task = self.task(key)
        self.call(Expected(None if task else TaskNotFoundError), "pause_task", self.task_id(key))
        if task is not None:
            task.deadline = None
            task.paused = True
            task.rerun = False
        self.settle()

    @rule(key=tasks, delay=st.sampled_from([0.0, 3.0]))
    def resume(self, key: str, delay: float) -> None:
        task = self.task(key)
        error = None if task else TaskNotFoundError
        if task is not None and task.job is not None:
            error = TaskRunningError
        self.call(Expected(error), "resume_task", self.task_id(key), delay)
        if task is not None and error is None:
            deadline, task.pending = task.pending, None
            if deadline is None or delay:
                deadline = self.now + delay
            task.anchor = deadline
            self.schedule(task, deadline)
        self.settle()

    @rule(key=tasks)
    def remove(self, key: str) -> None:
        task = self.task(key)
        self.call(Expected(None if task else TaskNotFoundError), "remove_task", self.task_id(key))
        if task is not None:
            self.gone[key] = self.model.pop(key)
            if task.job is not None:
                self.end(task.job, JobStatus.CANCELLED, "task removed")
        self.settle()

    @rule(key=tasks, interval=st.sampled_from([10.0, 25.0]))
    def update_interval(self, key: str, interval: float) -> None:
        task = self.task(key)
        error = None if task else TaskNotFoundError
        if task is not None and task.run_once:
            error = ConfigurationError
        self.call(Expected(error), "update_task", self.task_id(key), interval=interval)
        if task is not None and error is None:
            task.interval = interval
            self.reschedule(task, self.now + interval)
        self.settle()

    @rule(key=tasks)
    def update_run_at_past(self, key: str) -> None:
        """A ``run_at`` in the past means: run now."""
        task = self.task(key)
        self.call(
            Expected(None if task else TaskNotFoundError),
            "update_task",
            self.task_id(key),
            run_at=PAST,
        )
        if task is not None:
            self.reschedule(task, self.now)
        self.settle()

    def reschedule(self, task: MTask, deadline: float) -> None:
        task.anchor = deadline
        if task.job is not None or task.paused:
            task.pending = deadline
        else:
            self.schedule(task, deadline)

    @rule(key=tasks, after_current=st.booleans())
    def run_now(self, key: str, after_current: bool) -> None:
        task = self.task(key)
        error: type[QuivError] | None = None
        if task is None:
            error = TaskNotFoundError
        elif task.paused:
            error = TaskNotActiveError
        elif task.job is not None and (not after_current or task.run_once):
            error = TaskRunningError
        self.call(
            Expected(error),
            "run_task_immediately",
            self.task_id(key),
            after_current=after_current,
        )
        if task is not None and error is None:
            if task.job is not None:
                task.rerun = True
            else:
                self.dispatch(task)
        self.settle()

    def in_flight(self) -> list[MTask]:
        return [t for t in self.model.values() if t.job is not None]

    @precondition(lambda self: self.in_flight())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.in_flight()))
        assert task.job is not None and task.job.id is not None
        assert self.call(Expected(), "cancel_job", task.job.id) is True
        self.end(task.job, JobStatus.CANCELLED, "cancelled by cancel_job()")
        self.settle()

    @precondition(lambda self: self.in_flight())
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "fail"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        task = data.draw(st.sampled_from(self.in_flight()))
        job = task.job
        assert job is not None and job.id is not None
        CONTROL.release(job.id, outcome)
        if outcome == "ok":
            self.end(job, JobStatus.COMPLETED, None)
        else:
            self.end(job, JobStatus.FAILED, FAILURE)
        self.settle()

    @precondition(lambda self: self.ended)
    @rule(data=st.data())
    def cancel_an_ended_job(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.ended))
        assert self.call(Expected(), "cancel_job", job.id) is False
        self.settle()

    @rule(seconds=st.sampled_from([1.0, 5.0, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.portal.call(self.clock.advance, seconds)
        self.now += seconds
        self.settle()

    # the end --------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            running = [t.job for t in self.in_flight()]
            self.call(Expected(), "shutdown", WAIT)
            for job in running:
                assert job is not None and job.id is not None
                CONTROL.wait_for(lambda j=job: j.id in CONTROL.ends, "shutdown's end events")
                ((event, final),) = CONTROL.ends[job.id]
                assert event is Event.JOB_CANCELLED
                assert final.error_message == SHUTDOWN_REASON
            with CONTROL.cond:
                started = {j for jobs in CONTROL.started.values() for j in jobs}
                assert set(CONTROL.ends) == started, "a started job never ended"
                assert all(len(ends) == 1 for ends in CONTROL.ends.values())
                assert CONTROL.overlaps == []
        finally:
            for gate in list(CONTROL.gates.values()):
                gate.set()
            self.stack.close()


async def _turns() -> None:
    """Let the scheduler's loop take a few turns (the timer wakes within two)."""
    for _ in range(8):
        await anyio.lowlevel.checkpoint()


async def _make_clock() -> FakeClock:
    return FakeClock()


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value


@pytest.fixture
def no_thread_left_waiting() -> Iterator[None]:
    yield
    for gate in list(CONTROL.gates.values()):
        gate.set()


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    "backend",
    [
        "asyncio",
        pytest.param(
            "trio",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("trio") is None, reason="trio is not installed"
            ),
        ),
    ],
)
def test_the_api_matches_the_model(backend: str, no_thread_left_waiting: None) -> None:
    machine = type(f"SchedulerMachine_{backend}", (SchedulerMachine,), {"backend": backend})
    run_state_machine_as_test(machine, settings=SETTINGS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_api_matches_the_model_at_length(no_thread_left_waiting: None) -> None:
    for backend in ("asyncio", "trio"):
        machine = type(f"SchedulerMachine_{backend}", (SchedulerMachine,), {"backend": backend})
        run_state_machine_as_test(
            machine,
            settings=settings(SETTINGS, max_examples=200, stateful_step_count=60),
        )
