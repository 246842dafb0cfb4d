"""quiv.testing.VirtualClock and run_until_idle, on both backends."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from quiv import AsyncQuiv, ConfigurationError, JobStatus, current_job
from quiv.testing import DEFAULT_START, VirtualClock, capture_events, run_until_idle

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_the_clock_starts_where_it_is_told() -> None:
    assert VirtualClock().wall_now() == DEFAULT_START
    clock = VirtualClock(T0)
    assert clock.now() == 0.0
    assert clock.wall_now() == T0
    assert clock.wall_time() == T0.timestamp()
    naive = VirtualClock(datetime(2026, 3, 1))  # naive means UTC
    assert naive.wall_now() == T0


@pytest.mark.parametrize("start", ["2026-03-01", 0, None.__class__])
def test_a_start_that_is_not_a_datetime_is_refused(start: object) -> None:
    with pytest.raises(ConfigurationError, match="start"):
        VirtualClock(start)  # type: ignore[arg-type]


@pytest.mark.parametrize("delta", [-1, -0.001, float("nan"), float("inf"), "1", True])
async def test_advance_refuses_what_is_not_a_step_forward(delta: object) -> None:
    clock = VirtualClock(T0)
    with pytest.raises(ConfigurationError, match="delta"):
        await clock.advance(delta)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="delta"):
        await clock.advance(timedelta(seconds=-1))
    assert clock.now() == 0.0


async def test_advance_to_refuses_the_past() -> None:
    clock = VirtualClock(T0)
    with pytest.raises(ConfigurationError, match="when"):
        await clock.advance_to(T0 - timedelta(microseconds=1))
    with pytest.raises(ConfigurationError, match="when"):
        await clock.advance_to("tomorrow")  # type: ignore[arg-type]


async def test_monotonic_and_wall_time_move_together() -> None:
    clock = VirtualClock(T0)
    await clock.advance(90)
    await clock.advance(timedelta(minutes=1, microseconds=5))
    assert clock.now() == pytest.approx(150.000005)
    assert clock.wall_now() == T0 + timedelta(seconds=150, microseconds=5)
    await clock.advance_to(T0 + timedelta(days=2))
    assert clock.wall_now() == T0 + timedelta(days=2)


def test_jump_wall_moves_wall_time_alone() -> None:
    clock = VirtualClock(T0)
    clock.jump_wall(timedelta(hours=1))
    clock.jump_wall(-60)
    assert clock.now() == 0.0
    assert clock.wall_now() == T0 + timedelta(minutes=59)
    with pytest.raises(ConfigurationError, match="delta"):
        clock.jump_wall(float("nan"))


async def test_a_sleeper_on_the_clock_wakes_at_its_deadline() -> None:
    clock = VirtualClock(T0)
    woke: list[float] = []

    async def sleeper(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(clock.now())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 30.0)
            tg.start_soon(sleeper, 10.0)
            await anyio.wait_all_tasks_blocked()
            await clock.advance(60)
    assert woke == [10.0, 30.0]


async def test_an_interval_task_runs_on_its_grid() -> None:
    clock = VirtualClock(T0)
    starts: list[datetime] = []
    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        await scheduler.add_task(
            "tick", lambda: starts.append(clock.wall_now()), interval=60, fixed_interval=True
        )
        await clock.advance(600)
    assert starts == [T0 + timedelta(minutes=n) for n in range(11)]


async def test_a_slow_handler_is_not_timed_out_by_virtual_time() -> None:
    """The autojump pitfall: 0.3 s of real work under a 5 s timeout completes."""
    clock = VirtualClock(T0)

    def slow() -> bool:
        time.sleep(0.3)
        job = current_job()
        assert job is not None
        return job.cancelled

    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        task_id = await scheduler.add_task("slow", slow, run_once=True, timeout=5)
        await clock.advance(60)
        (job,) = await scheduler.get_all_jobs(task_id=task_id)
    assert job.status is JobStatus.COMPLETED
    assert job.result is False  # never cancelled


async def test_a_virtual_sleep_is_timed_out_at_its_virtual_time() -> None:
    clock = VirtualClock(T0)
    seen: list[datetime] = []

    def napper() -> None:
        try:
            current_job().sleep(3600)  # type: ignore[union-attr]
        finally:
            seen.append(clock.wall_now())

    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        task_id = await scheduler.add_task("nap", napper, run_once=True, timeout=5)
        await clock.advance(60)
        (job,) = await scheduler.get_all_jobs(task_id=task_id)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == "timed out after 5 s"
    assert seen == [T0 + timedelta(seconds=5)]


async def test_virtual_sleeps_end_in_order_in_sync_and_async_handlers() -> None:
    clock = VirtualClock(T0)
    ends: list[tuple[str, datetime]] = []

    def sync_nap() -> None:
        current_job().sleep(30)  # type: ignore[union-attr]
        ends.append(("sync", clock.wall_now()))

    async def async_nap() -> None:
        await current_job().sleep_async(20)  # type: ignore[union-attr]
        ends.append(("async", clock.wall_now()))

    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        await scheduler.add_task("sync", sync_nap, run_once=True)
        await scheduler.add_task("async", async_nap, run_once=True)
        await clock.advance(25)
        assert ends == [("async", T0 + timedelta(seconds=20))]
        await clock.advance(25)
    assert ends == [("async", T0 + timedelta(seconds=20)), ("sync", T0 + timedelta(seconds=30))]


async def test_advance_waits_for_work_that_jobs_schedule() -> None:
    clock = VirtualClock(T0)
    done: list[datetime] = []
    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:

        async def parent() -> None:
            await scheduler.add_task(
                "child", lambda: done.append(clock.wall_now()), run_once=True, delay=30
            )

        await scheduler.add_task("parent", parent, run_once=True, delay=10)
        await clock.advance(45)
        assert done == [T0 + timedelta(seconds=40)]


async def test_advance_names_the_handlers_still_at_work_when_it_gives_up() -> None:
    clock = VirtualClock(T0)
    gate = threading.Event()
    async with AsyncQuiv(clock=clock, db_path=":memory:", shutdown_timeout=5) as scheduler:
        await scheduler.add_task("stuck", lambda: gate.wait(5), run_once=True)
        try:
            with pytest.raises(TimeoutError, match="'stuck'"):
                await clock.advance(10, timeout=0.2)
        finally:
            gate.set()


async def test_run_until_idle_waits_for_the_handlers_running_now() -> None:
    clock = VirtualClock(T0)
    finished = threading.Event()

    def work() -> None:
        time.sleep(0.05)
        finished.set()

    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        later = await scheduler.add_task("later", finished.clear, run_once=True, delay=10)
        await scheduler.add_task("now", work, run_once=True)
        await run_until_idle(scheduler, timeout=5)
        assert finished.is_set()
        assert (await scheduler.get_task(later)).status.value == "active"  # time did not move
        assert clock.now() == 0.0


async def test_run_until_idle_on_the_loop_clock() -> None:
    async with AsyncQuiv(db_path=":memory:") as scheduler:
        task_id = await scheduler.add_task("now", lambda: time.sleep(0.05), run_once=True)
        await run_until_idle(scheduler, timeout=5)
        job = await scheduler.wait_for_task(task_id, timeout=5)  # already finished
    assert job.status is JobStatus.COMPLETED


async def test_run_until_idle_checks_its_arguments() -> None:
    with pytest.raises(ConfigurationError, match="scheduler"):
        run_until_idle(object())  # type: ignore[call-overload]
    async with AsyncQuiv(db_path=":memory:") as scheduler:
        with pytest.raises(ConfigurationError, match="timeout"):
            await run_until_idle(scheduler, timeout=0)
    await run_until_idle(scheduler)  # stopped: idle


async def test_jobs_queued_behind_sleepers_run_when_their_turn_comes() -> None:
    clock = VirtualClock(T0)
    ends: list[tuple[str, datetime]] = []

    def nap(name: str) -> None:
        current_job().sleep(10)  # type: ignore[union-attr]
        ends.append((name, clock.wall_now()))

    async with AsyncQuiv(clock=clock, db_path=":memory:", pool_size=1) as scheduler:
        await scheduler.add_task("first", nap, run_once=True, args=("first",))
        await scheduler.add_task("second", nap, run_once=True, args=("second",))
        await clock.advance(30)
    assert ends == [("first", T0 + timedelta(seconds=10)), ("second", T0 + timedelta(seconds=20))]


async def test_the_job_sleep_is_real_time_and_cancel_aware_on_the_loop_clock() -> None:
    started = threading.Event()
    woke: list[bool] = []

    def long_nap() -> None:
        started.set()
        try:
            current_job().sleep(60)  # type: ignore[union-attr]
        finally:
            woke.append(True)

    async def async_nap() -> None:
        await current_job().sleep_async(0.01)  # type: ignore[union-attr]

    async with AsyncQuiv(db_path=":memory:") as scheduler:
        short = await scheduler.add_task("short", async_nap, run_once=True)
        assert (await scheduler.wait_for_task(short, timeout=5)).status is JobStatus.COMPLETED
        task_id = await scheduler.add_task("nap", long_nap, run_once=True)
        assert await anyio.to_thread.run_sync(started.wait, 5)
        (job,) = await scheduler.get_all_jobs(task_id=task_id)
        assert scheduler.cancel_job(job.id)
        ended = await scheduler.wait_for_job(job.id, timeout=5)  # not 60 s later
    assert ended.status is JobStatus.CANCELLED
    assert ended.error_type is None  # the JobCancelledError of a cancel is no failure
    assert woke == [True]


async def test_the_job_sleep_checks_its_argument() -> None:
    clock = VirtualClock(T0)
    errors: list[str] = []

    def bad() -> None:
        for seconds in (-1, float("nan"), "1"):
            try:
                current_job().sleep(seconds)  # type: ignore[union-attr, arg-type]
            except ConfigurationError as exc:
                errors.append(str(exc))

    async with AsyncQuiv(clock=clock, db_path=":memory:") as scheduler:
        await scheduler.add_task("bad", bad, run_once=True)
        await run_until_idle(scheduler)
    assert len(errors) == 3 and all("seconds" in error for error in errors)


def test_advance_blocking_moves_a_sync_scheduler(anyio_backend: tuple[str, object]) -> None:
    from quiv import Quiv

    clock = VirtualClock(T0)
    starts: list[datetime] = []
    with Quiv(clock=clock, db_path=":memory:", backend=anyio_backend[0]) as scheduler:
        scheduler.add_task("tick", lambda: starts.append(clock.wall_now()), interval=60)
        clock.advance_blocking(120)
        clock.advance_to_blocking(T0 + timedelta(minutes=3))
        scheduler.portal.call(clock.advance, 0)  # on the scheduler's loop: fine
        with pytest.raises(ConfigurationError, match="advance_blocking"):
            anyio.run(clock.advance, 1)  # another thread's loop
    assert starts == [T0 + timedelta(minutes=n) for n in range(4)]


async def test_advance_waits_for_the_claim_of_a_keyed_schedule(tmp_path: Path) -> None:
    """With a database file each fire of a keyed schedule is claimed in the store first."""
    pytest.importorskip("cronsim")
    clock = VirtualClock(T0)
    async with AsyncQuiv(clock=clock, db_path=tmp_path / "quiv.db") as scheduler:
        with capture_events(scheduler) as events:
            await scheduler.add_task("nightly", lambda: None, cron="0 3 * * *", key="nightly")
            await clock.advance(timedelta(days=3))
    assert events.run_times() == [T0 + timedelta(days=n, hours=3) for n in range(3)]
