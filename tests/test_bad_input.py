"""Bad input for every public parameter beyond ``add_task`` and the constructor.

One table, :data:`TABLE`, lists ``(method, parameter, bad value, expected error)``;
one parametrized test per face (``AsyncQuiv`` on asyncio and trio, ``Quiv``)
calls the method with every other argument valid and checks that

* the error is the expected :class:`~quiv.QuivError` subclass,
* its message names the parameter and shows the value,
* nothing changed: tasks, jobs, statistics and listeners are as before, and no
  event was emitted.

``add_task`` and the ``AsyncQuiv`` constructor have their own table in
``test_validation.py``; the rows here for the constructors are the values it
does not try, and they run on both faces.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import WAIT, Recorder, settle

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    HandlerRegistrationError,
    InvalidTimezoneError,
    JobNotFoundError,
    JobStatus,
    Quiv,
    QuivConfig,
    QuivError,
    TaskNotFoundError,
    TaskStatus,
    run_subprocess,
)
from quiv.testing import FakeClock
from quiv.triggers import CronTrigger, IntervalTrigger, OnceTrigger

NAN = float("nan")
INF = float("inf")
#: aware datetimes that cannot be converted to UTC (the conversion overflows)
TOO_EARLY = datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))
TOO_LATE = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))


class _Id:
    """Placeholder for an id that exists in the fixture's scheduler."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


TASK = _Id("recurring task id")
ONCE = _Id("run-once task id")
JOB = _Id("finished job id")


def noop(*args: Any) -> None:
    pass


class NaiveTrigger:
    """A faulty trigger: its fires have no time zone."""

    def next_fire(self, after: datetime) -> datetime | None:
        return datetime(2999, 1, 1)

    def __repr__(self) -> str:
        return "NaiveTrigger()"


CRON = CronTrigger("* * * * *")


#: valid arguments of every method; each row replaces one of them
BASE: dict[str, dict[str, Any]] = {
    "update_task": {"task_id": TASK},
    "remove_task": {"task_id": TASK},
    "pause_task": {"task_id": TASK},
    "resume_task": {"task_id": TASK, "delay": 0},
    "run_task_immediately": {"task_id": TASK, "after_current": False},
    "get_task": {"task_id": TASK},
    "get_all_tasks": {},
    "cancel_job": {"job_id": JOB},
    "get_job": {"job_id": JOB},
    "get_all_jobs": {},
    "wait_for_job": {"job_id": JOB, "timeout": WAIT},
    "wait_for_task": {"task_id": TASK, "timeout": WAIT},
    "add_listener": {"event": Event.JOB_COMPLETED, "callback": noop},
    "remove_listener": {"event": Event.JOB_COMPLETED, "callback": noop},
    "shutdown": {"timeout": WAIT},
    "preview": {"task_id_or_trigger": TASK, "n": 5},
}


@dataclass(frozen=True)
class Bad:
    method: str
    param: str
    value: Any
    error: type[QuivError] = ConfigurationError
    #: extra valid arguments this row needs (e.g. another task id)
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        extra = "".join(f",{k}={v!r}" for k, v in self.extra)
        return f"{self.method}({self.param}={self.value!r}{extra})"


def _rows(
    methods: tuple[str, ...],
    param: str,
    values: list[Any],
    error: type[QuivError] = ConfigurationError,
    **extra: Any,
) -> list[Bad]:
    return [Bad(m, param, v, error, tuple(extra.items())) for m in methods for v in values]


TASK_METHODS = (
    "update_task",
    "remove_task",
    "pause_task",
    "resume_task",
    "run_task_immediately",
    "get_task",
    "wait_for_task",
)
JOB_METHODS = ("cancel_job", "get_job", "wait_for_job")
WRONG_IDS: list[Any] = [5, None, 1.5, b"id", ["id"], uuid.uuid4()]
UNKNOWN_TASK_IDS: list[Any] = ["", "no-such-task", str(uuid.uuid4())]
UNKNOWN_JOB_IDS: list[Any] = ["", "no-such-job", str(uuid.uuid4())]
WRONG_EVENTS: list[Any] = [
    "job_completed",  # the member's value, not the member
    "JOB_COMPLETED",
    None,
    5,
    Event,
    [Event.JOB_COMPLETED],
    TaskStatus.ACTIVE,
    JobStatus.COMPLETED,
]
# seconds that may be 0 or more (infinity allowed where the row says so)
BAD_SECONDS: list[Any] = [-1, -1e-9, -INF, NAN, "1", True, False, [1], 1j, Decimal("1")]
BAD_BOOLS: list[Any] = [1, 0, "yes", "", None, 1.0]
BAD_INTS: list[Any] = [-1, 1.5, 2.0, "1", True, NAN, INF, None]
BAD_DATETIMES: list[Any] = ["2030-01-01T00:00:00", 1_900_000_000, date(2030, 1, 1), TOO_EARLY]

TABLE: list[Bad] = [
    # -- ids ------------------------------------------------------------------------
    *_rows(TASK_METHODS, "task_id", WRONG_IDS),
    *_rows(TASK_METHODS, "task_id", UNKNOWN_TASK_IDS, TaskNotFoundError),
    *_rows(JOB_METHODS, "job_id", WRONG_IDS),
    *_rows(("get_job", "wait_for_job"), "job_id", UNKNOWN_JOB_IDS, JobNotFoundError),
    # -- update_task -----------------------------------------------------------------
    *_rows(("update_task",), "task_name", ["", "   ", None, 5, b"name"]),
    *_rows(("update_task",), "interval", [0, -1, NAN, INF, -INF, "5", True, None, [5], 1j]),
    *_rows(("update_task",), "fixed_interval", [0, "no", None]),
    *_rows(("update_task",), "args", ["abc", 5, {"a": 1}, {1, 2}]),
    *_rows(("update_task",), "kwargs", [[("a", 1)], "a=1", {1: 2}, 5]),
    *_rows(("update_task",), "timeout", [0, -1, NAN, INF, "1", True]),
    *_rows(("update_task",), "max_retries", [-1, 1.5, 2.0, True, "3", None, 10**9]),
    *_rows(("update_task",), "retry_backoff", [0, -1, NAN, INF, True, None, "30"]),
    *_rows(("update_task",), "jitter", [-0.5, NAN, INF, True, "1", None]),
    *_rows(("update_task",), "progress_callback", [5, "callback", b"cb"], HandlerRegistrationError),
    *_rows(("update_task",), "run_at", [*BAD_DATETIMES, TOO_LATE, None]),
    # a run-once task has no interval
    Bad("update_task", "interval", 5, extra=(("task_id", ONCE),)),
    # interval and run_at exclude each other
    Bad("update_task", "run_at", datetime(2030, 1, 1), extra=(("interval", 5),)),
    *_rows(("update_task",), "cron", ["", "61 * * * *", "not cron", "@every", 5, None]),
    *_rows(("update_task",), "trigger", [5, "0 * * * *", object(), OnceTrigger(), IntervalTrigger]),
    *_rows(("update_task",), "misfire_grace", [0, -1, NAN, INF, "1", True]),
    # a run-once task takes no new schedule; a schedule excludes interval and run_at
    Bad("update_task", "cron", "0 * * * *", extra=(("task_id", ONCE),)),
    Bad("update_task", "cron", "0 * * * *", extra=(("interval", 5),)),
    Bad(
        "update_task",
        "trigger",
        CronTrigger("0 * * * *"),
        extra=(("run_at", datetime(2030, 1, 1)),),
    ),
    Bad("update_task", "cron", "0 * * * *", extra=(("trigger", CronTrigger("0 * * * *")),)),
    # -- preview ----------------------------------------------------------------------
    *_rows(("preview",), "task_id_or_trigger", [5, None, b"id", object(), CronTrigger]),
    *_rows(("preview",), "task_id_or_trigger", UNKNOWN_TASK_IDS, TaskNotFoundError),
    *_rows(("preview",), "n", [-1, 1.5, "5", True, None, 10**6]),
    # (more rows from the scheduler-level tests)
    *_rows(("update_task",), "cron", [b"@daily", "@reboot", "* * * *"]),
    *_rows(("update_task",), "trigger", [None, NaiveTrigger()]),
    Bad("update_task", "trigger", CRON, extra=(("task_id", ONCE),)),
    *_rows(("preview",), "task_id_or_trigger", [NaiveTrigger]),
    *_rows(("preview",), "n", [10_001, NAN]),
    *_rows(("preview",), "after", [*BAD_DATETIMES, TOO_LATE]),
    # -- resume_task, run_task_immediately ------------------------------------------
    *_rows(("resume_task",), "delay", [*BAD_SECONDS, INF, None]),
    *_rows(("run_task_immediately",), "after_current", BAD_BOOLS),
    # -- get_all_tasks ----------------------------------------------------------------
    *_rows(("get_all_tasks",), "include_run_once", BAD_BOOLS),
    *_rows(("get_all_tasks",), "status", ["bogus", "", 5, Event.TASK_ADDED, JobStatus.FAILED]),
    *_rows(("get_all_tasks",), "limit", [x for x in BAD_INTS if x is not None]),
    *_rows(("get_all_tasks",), "offset", BAD_INTS),
    *_rows(("get_all_tasks",), "task_name", [5, b"name", ["name"]]),
    # -- get_all_jobs -------------------------------------------------------------------
    *_rows(("get_all_jobs",), "status", ["bogus", "", 5, Event.JOB_FAILED, TaskStatus.PAUSED]),
    *_rows(("get_all_jobs",), "task_id", [5, b"id", ["id"]]),
    *_rows(("get_all_jobs",), "since", [*BAD_DATETIMES, TOO_LATE]),
    *_rows(("get_all_jobs",), "until", [*BAD_DATETIMES, TOO_LATE]),
    *_rows(("get_all_jobs",), "order_by", ["name", "", None, 5, ["started_at"], "started_at;"]),
    *_rows(("get_all_jobs",), "descending", BAD_BOOLS),
    *_rows(("get_all_jobs",), "limit", [x for x in BAD_INTS if x is not None]),
    *_rows(("get_all_jobs",), "offset", BAD_INTS),
    # -- waits and shutdown ----------------------------------------------------------
    *_rows(("wait_for_job", "wait_for_task", "shutdown"), "timeout", BAD_SECONDS),
    # -- listeners ------------------------------------------------------------------------
    *_rows(("add_listener", "remove_listener"), "event", WRONG_EVENTS),
    *_rows(("add_listener",), "callback", [5, "print", None, b"cb"], HandlerRegistrationError),
]


def _shown(value: Any) -> str:
    """What the message must show: the value, or the offending key of a mapping."""
    if isinstance(value, dict) and value and not all(isinstance(k, str) for k in value):
        return repr(next(k for k in value if not isinstance(k, str)))
    return repr(value)


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    return ids[value.name] if isinstance(value, _Id) else value


def _arguments(row: Bad, ids: dict[str, str]) -> dict[str, Any]:
    arguments = {**BASE[row.method], **dict(row.extra), row.param: row.value}
    return {name: _resolve(value, ids) for name, value in arguments.items()}


def _check_error(row: Bad, error: BaseException) -> None:
    assert type(error) is row.error or (
        # unknown time zones are reported with the more precise subclass
        row.error is ConfigurationError and isinstance(error, ConfigurationError)
    ), f"{row.id} raised {type(error).__name__}: {error}"
    message = str(error)
    assert row.param in message, f"{row.param!r} not named in: {message}"
    assert _shown(row.value) in message, f"{row.value!r} not shown in: {message}"


# -- the async face ---------------------------------------------------------------------


@dataclass
class World:
    """A running AsyncQuiv with a recurring task, a run-once task and a finished job."""

    scheduler: AsyncQuiv
    recorder: Recorder
    ids: dict[str, str]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with AsyncQuiv(clock=FakeClock(), pool_size=2, shutdown_timeout=WAIT) as s:
        recorder = Recorder(s)
        # the job of a run-once task: wait_for_task would race with the task's end
        done = await s.add_task("done", noop, run_once=True)
        (job,) = await s.get_all_jobs(task_id=done)
        job = await s.wait_for_job(job.id, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED
        ids = {
            TASK.name: await s.add_task("recurring", noop, interval=60, delay=30),
            ONCE.name: await s.add_task("once", noop, run_once=True, delay=30),
            JOB.name: job.id,
        }
        await recorder.wait_count(Event.TASK_ADDED, 3)
        yield World(s, recorder, ids)


async def _async_state(s: AsyncQuiv) -> tuple[Any, ...]:
    await settle()
    return (
        await s.get_all_tasks(include_run_once=True),
        await s.get_all_jobs(),
        await s.stats(),
        {event: len(callbacks) for event, callbacks in s._listeners._by_event.items()},
        s.is_running,
    )


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
async def test_async_face_rejects(world: World, row: Bad) -> None:
    s = world.scheduler
    before = await _async_state(s)
    events = len(world.recorder.records)
    with anyio.fail_after(WAIT), pytest.raises(QuivError) as info:
        result = getattr(s, row.method)(**_arguments(row, world.ids))
        if hasattr(result, "__await__"):
            await result
    _check_error(row, info.value)
    assert await _async_state(s) == before
    assert len(world.recorder.records) == events


# -- the sync face ------------------------------------------------------------------------


@dataclass
class SyncWorld:
    scheduler: Quiv
    ids: dict[str, str]
    events: list[Event]


@pytest.fixture(scope="module")
def sync_world() -> Iterator[SyncWorld]:
    """One Quiv for the whole table (its calls are cheap; starting one is not)."""
    events: list[Event] = []
    with Quiv(clock=FakeClock(), pool_size=2, shutdown_timeout=WAIT) as q:
        done = q.add_task("done", noop, run_once=True)
        (job,) = q.get_all_jobs(task_id=done)
        job = q.wait_for_job(job.id, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED
        ids = {
            TASK.name: q.add_task("recurring", noop, interval=60, delay=30),
            ONCE.name: q.add_task("once", noop, run_once=True, delay=30),
            JOB.name: job.id,
        }
        for event in Event:
            q.add_listener(event, lambda event, *_: events.append(event))
        yield SyncWorld(q, ids, events)


def _sync_state(q: Quiv) -> tuple[Any, ...]:
    # A round trip through the scheduler's loop first: events queued by the
    # call under test would be delivered by now.
    q.get_all_tasks()
    return (
        q.get_all_tasks(include_run_once=True),
        q.get_all_jobs(),
        q.stats(),
        {event: len(cbs) for event, cbs in q.async_quiv._listeners._by_event.items()},
        q.is_running,
    )


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_sync_face_rejects(sync_world: SyncWorld, row: Bad) -> None:
    q = sync_world.scheduler
    before = _sync_state(q)
    events = len(sync_world.events)
    with pytest.raises(QuivError) as info:
        getattr(q, row.method)(**_arguments(row, sync_world.ids))
    _check_error(row, info.value)
    assert _sync_state(q) == before
    assert len(sync_world.events) == events


# -- results that are not errors ---------------------------------------------------------


@pytest.mark.parametrize("job_id", UNKNOWN_JOB_IDS)
async def test_cancel_job_of_an_unknown_id_returns_false(world: World, job_id: str) -> None:
    before = await _async_state(world.scheduler)
    assert world.scheduler.cancel_job(job_id) is False
    assert world.scheduler.cancel_job(world.ids[JOB.name]) is False  # it ended already
    assert await _async_state(world.scheduler) == before


async def test_remove_listener_of_an_unknown_callback_is_ignored(world: World) -> None:
    before = await _async_state(world.scheduler)
    for callback in (noop, 5, None, "print"):
        world.scheduler.remove_listener(Event.TASK_ADDED, callback)  # type: ignore[arg-type]
    assert await _async_state(world.scheduler) == before


HUGE: list[tuple[str, dict[str, Any]]] = [
    ("resume_task", {"task_id": TASK, "delay": 1e300}),
    ("resume_task", {"task_id": TASK, "delay": 10**400}),
    ("update_task", {"task_id": TASK, "interval": 1e308}),
    ("update_task", {"task_id": TASK, "timeout": 1e308}),
    ("update_task", {"task_id": TASK, "retry_backoff": 1e308, "max_retries": 1_000_000}),
    ("update_task", {"task_id": TASK, "jitter": 1e308}),
    ("update_task", {"task_id": TASK, "run_at": datetime.max}),
    ("update_task", {"task_id": TASK, "run_at": datetime.min}),
    ("update_task", {"task_id": TASK, "task_name": "n" * 100_000, "args": tuple(range(10**5))}),
    ("get_all_tasks", {"limit": 10**30, "offset": 0}),
    ("get_all_tasks", {"offset": 10**30}),
    ("get_all_jobs", {"limit": 10**30}),
    ("get_all_jobs", {"limit": 2**63}),
    ("get_all_jobs", {"offset": 10**30}),
    ("get_all_jobs", {"since": datetime.min, "until": datetime.max}),
    ("get_all_jobs", {"since": datetime.max.replace(tzinfo=timezone.utc)}),
    ("wait_for_job", {"job_id": JOB, "timeout": 1e300}),
    ("wait_for_job", {"job_id": JOB, "timeout": INF}),
]


@pytest.mark.parametrize(("method", "kwargs"), HUGE, ids=[f"{m}({', '.join(k)})" for m, k in HUGE])
async def test_huge_values_are_taken_or_refused_cleanly(
    world: World, method: str, kwargs: dict[str, Any]
) -> None:
    """Huge (but well-typed) values are clamped or refused; never an OverflowError."""
    s = world.scheduler
    arguments = {name: _resolve(value, world.ids) for name, value in kwargs.items()}
    try:
        result = getattr(s, method)(**arguments)
        if hasattr(result, "__await__"):
            await result
    except QuivError as exc:
        assert any(name in str(exc) for name in kwargs), exc
    # the scheduler still works, and the task's next run is a sane datetime
    task = await s.get_task(world.ids[TASK.name])
    if task.next_run_at is not None:
        assert task.next_run_at.tzinfo is not None
    # (a run_at far in the past made it due: its job may be in flight already)
    await s.run_task_immediately(world.ids[TASK.name], after_current=True)
    job = await s.wait_for_task(world.ids[TASK.name], timeout=WAIT)
    assert job.status is JobStatus.COMPLETED


# -- constructors ---------------------------------------------------------------------------

CONSTRUCTOR: list[tuple[str, Any, type[QuivError]]] = [
    ("config", 5, ConfigurationError),
    ("config", "config", ConfigurationError),
    ("config", {"pool_size": 2}, ConfigurationError),
    ("pool_size", INF, ConfigurationError),
    ("pool_size", NAN, ConfigurationError),
    ("pool_size", 10**100, ConfigurationError),
    ("pool_size", 4.0, ConfigurationError),
    ("pool_size", [4], ConfigurationError),
    ("history_retention_seconds", -INF, ConfigurationError),
    ("history_retention_seconds", "", ConfigurationError),
    ("history_retention_seconds", [1], ConfigurationError),
    ("history_retention_seconds", 1j, ConfigurationError),
    ("timezone", "", InvalidTimezoneError),
    ("timezone", "   ", InvalidTimezoneError),
    ("timezone", b"UTC", InvalidTimezoneError),
    ("timezone", "../../etc/passwd", InvalidTimezoneError),
    ("timezone", "Europe/Berlin\x00", InvalidTimezoneError),
    ("timezone", 5.5, InvalidTimezoneError),
    ("logger", object(), ConfigurationError),
    ("logger", True, ConfigurationError),
    ("db_path", 5.5, ConfigurationError),
    ("db_path", b"/tmp/quiv.db", ConfigurationError),
    ("db_path", "   ", ConfigurationError),
    ("db_path", ["quiv.db"], ConfigurationError),
    ("worker_backend", "", ConfigurationError),
    ("worker_backend", "Trio", ConfigurationError),
    ("worker_backend", ["asyncio"], ConfigurationError),
    ("clock", "fake", ConfigurationError),
    ("clock", FakeClock, ConfigurationError),  # the class, not an instance
    ("clock", 0.0, ConfigurationError),
    ("shutdown_timeout", -INF, ConfigurationError),
    ("shutdown_timeout", "", ConfigurationError),
    ("shutdown_timeout", [1], ConfigurationError),
    ("max_result_bytes", -1, ConfigurationError),
    ("max_result_bytes", INF, ConfigurationError),
    ("max_result_bytes", "", ConfigurationError),
    ("max_result_bytes", [1], ConfigurationError),
    ("max_result_bytes", False, ConfigurationError),
    ("host_mode", 1, ConfigurationError),
    ("host_mode", "yes", ConfigurationError),
    ("host_mode", None, ConfigurationError),
    ("host_mode", True, ConfigurationError),  # without a db_path
]
SYNC_ONLY: list[tuple[str, Any, type[QuivError]]] = [
    ("backend", "curio", ConfigurationError),
    ("backend", "", ConfigurationError),
    ("backend", None, ConfigurationError),
    ("backend", 5, ConfigurationError),
    ("backend_options", 5, ConfigurationError),
    ("backend_options", "debug", ConfigurationError),
    ("backend_options", [("debug", True)], ConfigurationError),
]


@pytest.fixture
def private_tempdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("face", "name", "value", "error"),
    [(AsyncQuiv, *row) for row in CONSTRUCTOR]
    + [(Quiv, *row) for row in [*CONSTRUCTOR, *SYNC_ONLY]],
    ids=lambda v: v.__name__ if isinstance(v, type) and v in (AsyncQuiv, Quiv) else None,
)
def test_constructor_rejects(
    private_tempdir: Path, face: type[Any], name: str, value: Any, error: type[QuivError]
) -> None:
    threads = set(threading.enumerate())
    with pytest.raises(error) as info:
        face(**{name: value})
    assert name in str(info.value)
    assert _shown(value) in str(info.value)
    if name in QuivConfig.__dataclass_fields__:
        with pytest.raises(error):
            face(QuivConfig(**{name: value}))
    assert set(threading.enumerate()) - threads == set()  # nothing started
    assert list(private_tempdir.iterdir()) == []


# -- run_subprocess ------------------------------------------------------------------------

SUBPROCESS: list[tuple[str, Any, dict[str, Any]]] = [
    ("timeout", -1, {}),
    ("timeout", NAN, {}),
    ("timeout", INF, {}),
    ("timeout", "1", {}),
    ("timeout", True, {}),
    ("timeout", 10**400, {}),
    ("kill_grace", -1, {}),
    ("kill_grace", NAN, {}),
    ("kill_grace", INF, {}),
    ("kill_grace", None, {}),
    ("kill_grace", "5", {}),
    ("check", 1, {}),
    ("check", "yes", {}),
    ("check", None, {}),
    ("capture_output", 1, {}),
    ("capture_output", None, {}),
    ("input", "text", {}),  # a str without text mode
    ("input", 5, {}),
    ("input", b"bytes", {"text": True}),
    ("stop_event", 5, {}),
    ("stop_event", "stop", {}),
    ("stop_event", anyio.Event, {}),
]


@pytest.mark.parametrize(
    ("name", "value", "extra"),
    SUBPROCESS,
    ids=[f"{n}={v!r}{'+' + ','.join(e) if e else ''}" for n, v, e in SUBPROCESS],
)
def test_run_subprocess_rejects(
    monkeypatch: pytest.MonkeyPatch, name: str, value: Any, extra: dict[str, Any]
) -> None:
    started: list[Any] = []

    def popen(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise AssertionError("no process may start for a bad parameter")

    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(ConfigurationError) as info:
        run_subprocess(["true"], **{name: value}, **extra)
    assert name in str(info.value)
    assert _shown(value)[:40] in str(info.value)
    assert started == []


# -- the table itself ----------------------------------------------------------------------


def test_the_table_covers_every_parameter() -> None:
    """Every parameter of the methods in the table has at least one bad row."""
    import inspect

    covered = {(row.method, row.param) for row in TABLE}
    missing = [
        f"{method}({param})"
        for method in BASE
        for param in inspect.signature(getattr(AsyncQuiv, method)).parameters
        if param != "self" and (method, param) not in covered
    ]
    # remove_listener ignores unknown callbacks by contract (tested above)
    assert missing == ["remove_listener(callback)"]
    names = {row[0] for row in CONSTRUCTOR + SYNC_ONLY}
    for param in inspect.signature(Quiv).parameters:
        assert param in names, f"no bad constructor row for {param}"
    sub = {row[0] for row in SUBPROCESS}
    for param in inspect.signature(run_subprocess).parameters:
        if param not in ("args", "popen_kwargs"):  # passed to Popen as subprocess.run does
            assert param in sub, f"no bad run_subprocess row for {param}"
