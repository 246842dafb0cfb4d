"""Host mode within one process: two schedulers on one database file stand for two workers.

The runner lock is an ``flock`` on a descriptor of each scheduler's own, so
two schedulers of one process contend for it exactly as two processes do.
The real servers (``uvicorn --workers``, gunicorn) are in
``test_integration_host.py``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
from scheduler_helpers import WAIT, Recorder, settle

from quiv import AsyncQuiv, ConfigurationError, Event, Job, JobStatus, Quiv
from quiv._host.filesystems import network_file_system
from quiv.testing import FakeClock

pytestmark = pytest.mark.anyio

TICK = 0.2


def tick() -> None:
    pass


@asynccontextmanager
async def worker(path: Path) -> AsyncIterator[tuple[AsyncQuiv, Recorder]]:
    """One "worker": a host-mode scheduler on *path* declaring the host's schedule."""
    async with AsyncQuiv(db_path=str(path), host_mode=True) as scheduler:
        recorder = Recorder(scheduler, [Event.JOB_STARTED])
        await scheduler.add_task("tick", tick, interval=TICK, key="tick")
        yield scheduler, recorder


async def test_one_scheduler_of_the_host_runs_the_recurring_tasks(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    async with worker(db) as (first, first_runs), worker(db) as (second, second_runs):
        assert (first.is_runner, second.is_runner) == (True, False)
        await first_runs.wait_count(Event.JOB_STARTED, 3)
        # the second declared the same schedule and came due at least twice meanwhile
        assert second_runs.count(Event.JOB_STARTED) == 0
        task = await second.get_task(await second.add_task("tick", tick, interval=TICK, key="tick"))
        assert task.next_run_at is None  # held: the runner runs it
        # both name the schedule by the same id, derived from its key
        assert [t.id for t in await first.get_all_tasks()] == [task.id]


async def test_a_standby_takes_over_when_the_runner_ends(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    async with worker(db) as (first, first_runs):
        async with worker(db) as (second, second_runs):
            assert not second.is_runner
            await first_runs.wait_count(Event.JOB_STARTED, 2)
            await first.shutdown()
            # bounded by WAIT; how fast it takes over is bench/host.py's to measure
            await second_runs.wait_count(Event.JOB_STARTED, 1, timeout=WAIT)
            assert second.is_runner


async def test_run_once_tasks_run_in_the_process_that_added_them(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    async with worker(db) as (first, _), worker(db) as (second, second_runs):
        assert not second.is_runner
        task_id = await second.add_task("once", tick, run_once=True)
        job = await second.wait_for_task(task_id, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED
        await second.get_all_jobs(limit=1)  # a read commits what its store holds
        # the host's history is shared
        assert (await first.get_job(job.id)).status is JobStatus.COMPLETED


async def test_a_keyed_declaration_again_updates_the_schedule(tmp_path: Path) -> None:
    async with AsyncQuiv(db_path=str(tmp_path / "host.db"), host_mode=True) as scheduler:
        first = await scheduler.add_task("report", tick, interval=60, key="report")
        again = await scheduler.add_task("report v2", tick, interval=60, key="report", timeout=5)
        assert again == first
        (task,) = await scheduler.get_all_tasks()
        assert (task.task_name, task.timeout_seconds, task.interval_seconds) == (
            "report v2",
            5,
            60,
        )


async def test_keys_outside_host_mode_name_tasks_too(tmp_path: Path) -> None:
    async with AsyncQuiv() as scheduler:
        first = await scheduler.add_task("a", tick, interval=60, key="a")
        assert await scheduler.add_task("a", tick, interval=30, key="a") == first
        task = await scheduler.get_task(first)
        assert (task.interval_seconds, task.key) == (30, "a")
        other = await scheduler.add_task("b", tick, interval=60)
        assert len({first, other}) == 2
        assert (await scheduler.get_task(other)).key is None


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"host_mode": True}, "db_path"),
        ({"host_mode": True, "db_path": ":memory:"}, "db_path"),
        ({"host_mode": True, "db_path": "file:x.db?mode=memory"}, "db_path"),
        ({"host_mode": "yes", "db_path": "x.db"}, "host_mode"),
    ],
)
def test_host_mode_needs_a_database_file(settings: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        AsyncQuiv(**settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=names):
        Quiv(**settings)  # type: ignore[arg-type]


async def test_host_mode_refuses_a_recurring_task_without_a_key(tmp_path: Path) -> None:
    async with AsyncQuiv(db_path=str(tmp_path / "host.db"), host_mode=True) as scheduler:
        with pytest.raises(ConfigurationError, match="key="):
            await scheduler.add_task("tick", tick, interval=1)
        with pytest.raises(ConfigurationError, match="key="):
            await scheduler.add_task("nightly", tick, cron="30 2 * * *")
        assert await scheduler.get_all_tasks() == []  # nothing was registered


@pytest.mark.parametrize("key", ["", "   ", 7, "k" * 201])
async def test_bad_keys(key: object) -> None:
    async with AsyncQuiv() as scheduler:
        with pytest.raises(ConfigurationError, match="key must be"):
            await scheduler.add_task("t", tick, interval=1, key=key)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="key= names a recurring"):
            await scheduler.add_task("t", tick, run_once=True, key="once")
        assert await scheduler.get_all_tasks() == []


async def test_the_runner_lock_file_names_the_runner(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    async with worker(db) as (first, _):
        assert (tmp_path / "host.db-runner.lock").read_text().split() == [str(os.getpid()), "host"]
        assert first.is_runner
    assert not first.is_runner


# -- keyed schedules remember their last fire ----------------------------------


def clock_at(when: datetime) -> FakeClock:
    """A fake clock whose wall time is *when*."""
    clock = FakeClock()
    clock.jump_wall(when - datetime.fromtimestamp(clock.wall_time(), timezone.utc))
    return clock


DAY = datetime(2026, 3, 10, tzinfo=timezone.utc)


async def start_daily(
    db: Path, clock: FakeClock, logger: logging.Logger | None = None
) -> tuple[AsyncQuiv, Recorder, str]:
    scheduler = AsyncQuiv(db_path=str(db), clock=clock, logger=logger)
    await scheduler.__aenter__()
    recorder = Recorder(scheduler, [Event.JOB_STARTED, Event.JOB_COMPLETED])
    task_id = await scheduler.add_task("daily", tick, cron="0 3 * * *", key="daily")
    return scheduler, recorder, task_id


async def test_a_restart_neither_reruns_nor_skips_a_daily_schedule(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    clock = clock_at(DAY.replace(hour=2, minute=59))
    scheduler, recorder, task_id = await start_daily(db, clock)
    try:
        assert (await scheduler.get_task(task_id)).next_run_at == DAY.replace(hour=3)
        await clock.advance(61)
        await recorder.wait_count(Event.JOB_COMPLETED, 1)
    finally:
        await scheduler.__aexit__(None, None, None)

    # restarted five minutes later: today's run is done, tomorrow's is next
    scheduler, recorder, task_id = await start_daily(db, clock_at(DAY.replace(hour=3, minute=5)))
    try:
        await settle()
        assert (await scheduler.get_task(task_id)).next_run_at == DAY.replace(day=11, hour=3)
        assert len(await scheduler.get_all_jobs()) == 1  # yesterday's only
    finally:
        await scheduler.__aexit__(None, None, None)

    # down over tomorrow's 03:00, back at 03:10: one catch-up run, then the next day
    later = clock_at(DAY.replace(day=11, hour=3, minute=10))
    scheduler, recorder, task_id = await start_daily(db, later)
    try:
        await recorder.wait_count(Event.JOB_COMPLETED, 1)
        assert len(await scheduler.get_all_jobs()) == 2  # one catch-up run, not one per day
        assert (await scheduler.get_task(task_id)).next_run_at == DAY.replace(day=12, hour=3)
    finally:
        await scheduler.__aexit__(None, None, None)


async def test_a_fire_another_process_claimed_does_not_run_again(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    clock = clock_at(DAY.replace(hour=2, minute=59))
    refused = anyio.Event()

    class Refusals(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # on the scheduler's loop
            if "claimed elsewhere" in record.getMessage():
                refused.set()

    logger = logging.getLogger("quiv.tests.claims")
    logger.setLevel(logging.INFO)
    handler = Refusals()
    logger.addHandler(handler)
    scheduler, recorder, task_id = await start_daily(db, clock, logger)
    try:
        # another process claims today's 03:00 first (as a runner that died right after would)
        fire = int(
            (DAY.replace(hour=3) - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()
        )
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO fires (key, fire, owner, claimed_at) VALUES (?, ?, ?, ?)",
                # claimed now: a claim older than the history's retention is pruned
                ("daily", fire * 1_000_000, "another", time.time_ns() // 1000),
            )
        await clock.advance(61)
        # the claim is refused: no job, and the schedule moves on to tomorrow
        with anyio.fail_after(WAIT):
            await refused.wait()
        assert (await scheduler.get_task(task_id)).next_run_at == DAY.replace(day=11, hour=3)
        assert await scheduler.get_all_jobs() == []  # no job was ever made for it
    finally:
        await scheduler.__aexit__(None, None, None)
        logger.removeHandler(handler)


# -- commands between the processes of a host ----------------------------------


async def test_a_cancel_reaches_a_job_running_in_another_process(tmp_path: Path) -> None:
    db = tmp_path / "host.db"

    def long_job(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT * 2)

    async with worker(db) as (first, _), worker(db) as (second, _):
        ends = Recorder(first, [Event.JOB_STARTED, Event.JOB_CANCELLED])
        task_id = await first.add_task("long", long_job, run_once=True)
        job_id = (await first.get_task(task_id)).next_job_id
        await ends.wait_count(Event.JOB_STARTED, 1, task_id=task_id)
        assert job_id is not None
        await first.get_job(job_id)  # its record is committed: the host's history shows it
        assert second.cancel_job(job_id) is True
        (job,) = await ends.wait_count(Event.JOB_CANCELLED, 1)  # its latency: bench/host.py
        assert job.id == job_id
        await first.get_job(job_id)  # its final record is committed
        assert second.cancel_job(job_id) is False  # over: nothing in flight any more
        assert second.cancel_job("00000000-0000-4000-8000-000000000000") is False


async def test_stats_count_the_tasks_and_jobs_of_the_whole_host(tmp_path: Path) -> None:
    db = str(tmp_path / "host.db")
    release = threading.Event()

    def gated() -> None:
        release.wait(WAIT * 2)

    first_clock, second_clock = clock_at(DAY), clock_at(DAY)
    async with (
        AsyncQuiv(db_path=db, host_mode=True, clock=first_clock) as first,
        AsyncQuiv(db_path=db, host_mode=True, clock=second_clock) as second,
    ):
        assert (first.is_runner, second.is_runner) == (True, False)
        runs = Recorder(first, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        for scheduler in (first, second):  # every worker declares the schedule
            minutely = await scheduler.add_task("minutely", tick, interval=60, key="minutely")
        await first_clock.advance(60)
        await runs.wait_count(Event.JOB_COMPLETED, 1, task_id=minutely)
        gated_id = await first.add_task("gated", gated, run_once=True)
        await runs.wait_count(Event.JOB_STARTED, 1, task_id=gated_id)
        await first.get_all_jobs(limit=1)  # a read commits what its store holds
        await second_clock.advance(60)  # due in the standby too: held for the runner
        await settle()
        assert (await second.get_task(minutely)).next_run_at is None
        try:
            here, there = await first.stats(), await second.stats()
        finally:
            release.set()
        # the keyed schedule both declared counts once; the gated task (running)
        # and its job are the first's; the standby shows the runner's next run
        for stats in (here, there):
            assert stats.tasks_by_status == {"active": 1, "running": 1, "paused": 0}
            assert stats.active_jobs == 1
            assert stats.next_run_at == DAY.replace(minute=2)
            assert stats.job_history_count == 2
        assert (here.pool_utilization, there.pool_utilization) == (0.1, 0.0)  # each its own


# -- misuse is loud ---------------------------------------------------------------


async def test_two_schedulers_without_host_mode_cannot_share_a_database(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    async with AsyncQuiv(db_path=db):
        with pytest.raises(ConfigurationError, match=r"in use by another process.*host_mode=True"):
            async with AsyncQuiv(db_path=db):
                pass
        with pytest.raises(ConfigurationError, match="without host mode"):
            async with AsyncQuiv(db_path=db, host_mode=True):
                pass
    async with AsyncQuiv(db_path=db):  # the first one's end freed the file
        pass


async def test_a_process_without_host_mode_cannot_join_a_host(tmp_path: Path) -> None:
    db = str(tmp_path / "host.db")
    async with AsyncQuiv(db_path=db, host_mode=True):
        with pytest.raises(ConfigurationError, match="host_mode=True"):
            async with AsyncQuiv(db_path=db):
                pass


async def test_wait_for_job_waits_for_a_job_of_another_process(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    release = threading.Event()

    def gated() -> str:
        release.wait(WAIT * 2)
        return "done"

    async with worker(db) as (first, _), worker(db) as (second, _):
        started = Recorder(first, [Event.JOB_STARTED])
        task_id = await first.add_task("gated", gated, run_once=True)
        job_id = (await first.get_task(task_id)).next_job_id
        assert job_id is not None
        await started.wait_count(Event.JOB_STARTED, 1, task_id=task_id)
        await first.get_job(job_id)  # the host's history shows it running
        async with anyio.create_task_group() as tg:
            ended: list[object] = []

            async def wait_in_second() -> None:
                ended.append(await second.wait_for_job(job_id, timeout=WAIT))

            tg.start_soon(wait_in_second)
            await settle()
            assert ended == []  # still running in the first process
            release.set()
            await first.wait_for_job(job_id, timeout=WAIT)
            await first.get_job(job_id)  # its final record is committed
        (job,) = ended
        assert isinstance(job, Job) and job.status is JobStatus.COMPLETED
        assert job.result == "done"
        release.clear()
        with pytest.raises(TimeoutError):  # a wait elsewhere is bounded like any other
            blocked = await first.add_task("blocked", gated, run_once=True)
            other = (await first.get_task(blocked)).next_job_id
            assert other is not None
            await started.wait_count(Event.JOB_STARTED, 2)
            await first.get_job(other)
            await second.wait_for_job(other, timeout=0.2)
        release.set()


def test_a_database_on_a_network_file_system_is_recognised(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    share = tmp_path / "my share"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {str(share).replace(' ', chr(92) + '040')} nfs4 rw 0 0\n"
    )
    share.mkdir()
    assert network_file_system(str(share / "app.db"), str(mounts)) == "nfs4"
    assert network_file_system(str(tmp_path / "app.db"), str(mounts)) is None
    assert network_file_system(str(share / "app.db"), str(tmp_path / "missing")) is None


async def test_a_scheduler_refuses_a_database_on_a_network_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quiv._host import election

    monkeypatch.setattr(election, "network_file_system", lambda path: "nfs4")
    with pytest.raises(ConfigurationError, match=r"network file system \(nfs4\)"):
        async with AsyncQuiv(db_path=str(tmp_path / "app.db"), host_mode=True):
            pass
    with pytest.raises(ConfigurationError, match="local disk"):
        async with AsyncQuiv(db_path=str(tmp_path / "app.db")):
            pass


def test_the_sync_face_runs_in_host_mode(tmp_path: Path) -> None:
    db = str(tmp_path / "host.db")
    first, second = Quiv(db_path=db, host_mode=True), Quiv(db_path=db, host_mode=True)
    first.start()
    try:
        second.start()
        try:
            assert (first.is_runner, second.is_runner) == (True, False)
            ids = {s.add_task("tick", tick, interval=60, key="tick") for s in (first, second)}
            assert len(ids) == 1
            job = second.wait_for_task(second.add_task("once", tick, run_once=True), timeout=WAIT)
            assert job.status is JobStatus.COMPLETED
        finally:
            second.shutdown()
        assert not second.is_runner
    finally:
        first.shutdown()
