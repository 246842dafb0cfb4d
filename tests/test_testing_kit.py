"""The testing kit on real schedules: both faces, both backends.

Each scenario is written once against :class:`Face`, which drives either an
``AsyncQuiv`` (through a blocking portal on the backend) or a ``Quiv`` (its
own loop thread on the backend), with a VirtualClock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from quiv import AsyncQuiv, ConfigurationError, Event, JobStatus, Quiv, current_job
from quiv.testing import EventLog, VirtualClock, capture_events, run_until_idle

pytest.importorskip("cronsim")

T0 = datetime(2026, 3, 15, tzinfo=timezone.utc)
UTC = timezone.utc


class Face:
    """One scheduler on a VirtualClock, driven by plain calls whichever its face."""

    def __init__(
        self, clock: VirtualClock, scheduler: AsyncQuiv | Quiv, portal: BlockingPortal | None
    ):
        self.clock = clock
        self.scheduler = scheduler
        self._portal = portal

    def add_task(self, name: str, func: Callable[..., Any], **kw: Any) -> str:
        scheduler = self.scheduler
        if isinstance(scheduler, Quiv):
            return scheduler.add_task(name, func, **kw)
        assert self._portal is not None
        task_id: str = self._portal.call(lambda: scheduler.add_task(name, func, **kw))
        return task_id

    def advance(self, delta: timedelta | float) -> None:
        if self._portal is None:
            self.clock.advance_blocking(delta)
        else:
            self._portal.call(self.clock.advance, delta)

    def idle(self) -> None:
        scheduler = self.scheduler
        if isinstance(scheduler, Quiv):
            run_until_idle(scheduler)
        else:
            assert self._portal is not None
            self._portal.call(lambda: run_until_idle(scheduler))

    def events(self) -> AbstractContextManager[EventLog]:
        return capture_events(self.scheduler)


@pytest.fixture(params=["async", "sync"])
def face_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_face(
    face_kind: str, anyio_backend: tuple[str, dict[str, object]]
) -> Iterator[Callable[..., Face]]:
    backend = anyio_backend[0]
    with ExitStack() as stack:

        def make(start: datetime = T0, **options: Any) -> Face:
            clock = VirtualClock(start)
            options = {"db_path": ":memory:", "shutdown_timeout": 5, **options}
            if face_kind == "sync":
                quiv = stack.enter_context(Quiv(clock=clock, backend=backend, **options))
                return Face(clock, quiv, None)
            portal = stack.enter_context(start_blocking_portal(backend))
            scheduler = stack.enter_context(
                portal.wrap_async_context_manager(AsyncQuiv(clock=clock, **options))
            )
            return Face(clock, scheduler, portal)

        yield make


def test_a_nightly_cron_for_30_days_across_the_spring_change(
    make_face: Callable[..., Face],
) -> None:
    face = make_face(timezone="Europe/Berlin")
    with face.events() as events:
        face.add_task("nightly", lambda: None, cron="30 2 * * *")
        face.advance(timedelta(days=30))
    before = [datetime(2026, 3, day, 1, 30, tzinfo=UTC) for day in range(15, 29)]  # CET
    gap = [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]  # 02:30 does not exist: 03:00 CEST
    after = [datetime(2026, 3, 30, 0, 30, tzinfo=UTC) + timedelta(days=n) for n in range(15)]
    assert events.run_times("nightly") == before + gap + after
    events.assert_ran("nightly", times=30)
    events.assert_ran("nightly", times=1, between=(gap[0], gap[0]))
    assert len([e for e in events if e.event is Event.JOB_COMPLETED]) == 30


def test_retries_back_off_in_virtual_time(make_face: Callable[..., Face]) -> None:
    face = make_face()
    attempts: list[int] = []

    def flaky() -> str:
        job = current_job()
        assert job is not None
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise RuntimeError(f"attempt {job.attempt} fails")
        return "done"

    with face.events() as events:
        face.add_task("flaky", flaky, run_once=True, max_retries=2, retry_backoff=10)
        face.advance(60)
    assert attempts == [1, 2, 3]
    # retry n waits retry_backoff * 2**(n-1): 10 s, then 20 s
    assert events.run_times("flaky") == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=30)]
    ends = [e.job for e in events if e.event in (Event.JOB_FAILED, Event.JOB_COMPLETED)]
    assert [j.status for j in ends if j is not None] == [
        JobStatus.FAILED,
        JobStatus.FAILED,
        JobStatus.COMPLETED,
    ]
    assert len([e for e in events if e.event is Event.JOB_RETRYING]) == 2
    last = ends[-1]
    assert last is not None
    events.assert_status(last.id, "completed")


def test_a_fixed_interval_grid_skips_the_slots_a_long_run_covers(
    make_face: Callable[..., Face],
) -> None:
    face = make_face()
    runs: list[datetime] = []

    def tick() -> None:
        runs.append(face.clock.wall_now())
        if len(runs) == 2:
            current_job().sleep(90)  # type: ignore[union-attr]  # covers the slot at 120

    face.add_task("tick", tick, interval=60, fixed_interval=True)
    face.advance(300)
    assert runs == [T0 + timedelta(seconds=s) for s in (0, 60, 180, 240, 300)]


def test_a_run_missed_by_more_than_its_grace_is_skipped(make_face: Callable[..., Face]) -> None:
    face = make_face()
    with face.events() as events:
        face.add_task("hourly", lambda: None, cron="0 * * * *", misfire_grace=60)
        face.advance(3600)
        face.clock.jump_wall(timedelta(hours=3))  # the host slept through three fires
        face.advance(60)  # the scheduler looks at the wall clock within a minute
        events.assert_skipped("hourly", reason="misfire", times=1)
        face.advance(3600)
    assert events.run_times("hourly") == [T0 + timedelta(hours=1), T0 + timedelta(hours=5)]
    events.assert_not_ran("hourly", between=(T0 + timedelta(hours=2), T0 + timedelta(hours=4)))


def test_run_until_idle_lets_due_work_finish_without_moving_time(
    make_face: Callable[..., Face],
) -> None:
    face = make_face()
    with face.events() as events:
        face.add_task("now", lambda: None, run_once=True)
        face.add_task("later", lambda: None, run_once=True, delay=5)
        face.idle()
    events.assert_ran("now", times=1)
    events.assert_not_ran("later")
    assert face.clock.wall_now() == T0


# -- the assertions' messages --------------------------------------------------


def test_assertions_say_what_did_happen(make_face: Callable[..., Face]) -> None:
    face = make_face()
    with face.events() as events:
        face.add_task("tick", lambda: None, interval=60)
        face.advance(120)
    with pytest.raises(
        AssertionError, match=r"expected 'tick' to run 2 time\(s\); it ran 3"
    ) as info:
        events.assert_ran("tick", times=2)
    assert "2026-03-15T00:02:00+00:00 job_started 'tick'" in str(info.value)
    with pytest.raises(AssertionError, match="it ran 1 time"):
        events.assert_not_ran(
            "tick", between=(T0 + timedelta(seconds=30), T0 + timedelta(seconds=90))
        )
    with pytest.raises(AssertionError, match="'nothing' to run at least once; it ran 0"):
        events.assert_ran("nothing")
    with pytest.raises(AssertionError, match="skipped"):
        events.assert_skipped()
    job = events.runs("tick")[0].job
    assert job is not None
    with pytest.raises(AssertionError, match="to end failed; it ended job_completed"):
        events.assert_status(job.id, JobStatus.FAILED)
    with pytest.raises(AssertionError, match="has not ended"):
        events.assert_status("no-such-job", "completed")


def test_assertions_check_their_arguments() -> None:
    log = EventLog()
    with pytest.raises(ConfigurationError, match="reason"):
        log.assert_skipped(reason="overlap")
    with pytest.raises(ConfigurationError, match="status"):
        log.assert_status("job", "done")
    with pytest.raises(ConfigurationError, match="times"):
        log.assert_ran("t", times=-1)
    with pytest.raises(ConfigurationError, match="between"):
        log.assert_ran("t", between=(T0,))  # type: ignore[arg-type]


def test_capture_events_checks_the_events(make_face: Callable[..., Face]) -> None:
    face = make_face()
    with pytest.raises(ConfigurationError, match="events"):
        with capture_events(face.scheduler, "job_started"):  # type: ignore[arg-type]
            pass
