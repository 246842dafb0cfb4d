"""Store semantics shared by SQLiteStore and MemoryStore, on asyncio and trio."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from store_helpers import T0, at, job_lifecycle, make_job, make_task, recording_logger, running

from quiv import ConfigurationError, JobStatus, StoreError, TaskStatus
from quiv._store import MemoryStore, SQLiteStore
from quiv.abc import JobQuery, Store

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Build an unstarted store of each kind (SQLite in a temporary directory)."""

    def factory(**kwargs: Any) -> Store:
        kwargs.setdefault("history_retention_seconds", 3600)
        if request.param == "memory":
            return MemoryStore(**kwargs)
        return SQLiteStore(**kwargs)

    return factory


async def test_job_round_trip_keeps_values_and_returns_aware_utc(make_store: StoreFactory) -> None:
    plus_two = timezone(timedelta(hours=2))
    job = make_job(
        "job-1",
        status=JobStatus.FAILED,
        started_at=T0.astimezone(plus_two),
        ended_at=(T0 + timedelta(seconds=2.5)).replace(tzinfo=None),  # naive means UTC
        scheduled_at=None,
        duration_seconds=2.5,
        error_message="ValueError('boom')",
        attempt=3,
    )
    async with running(make_store()) as store:
        store.put_job(job)
        got = await store.get_job("job-1")
    assert got is not None
    assert type(got.status) is JobStatus
    assert got.status is JobStatus.FAILED
    assert got.started_at == T0
    assert got.ended_at == T0 + timedelta(seconds=2.5)
    for value in (got.started_at, got.ended_at):
        assert value is not None and value.tzinfo is timezone.utc
    assert got.started_at.microsecond == T0.microsecond
    assert (got.scheduled_at, got.duration_seconds, got.attempt) == (None, 2.5, 3)
    assert got.error_message == "ValueError('boom')"
    assert (got.id, got.task_id, got.task_name) == (job.id, job.task_id, job.task_name)


async def test_task_round_trip_keeps_the_schedule_and_no_arguments(
    make_store: StoreFactory,
) -> None:
    task = make_task(
        "task-9",
        args=(1, "two", lambda: None),
        kwargs={"items": [1, 2, 3], "callback": lambda x: x},
        interval_seconds=None,
        run_once=True,
        status=TaskStatus.PAUSED,
        next_run_at=None,
        timeout_seconds=1.5,
        max_retries=2,
        retry_attempt=1,
        jitter_seconds=0.25,
        rerun_requested=True,
    )
    async with running(make_store()) as store:
        store.put_task(make_task("task-1"))
        store.put_task(task)
        tasks = await store.get_tasks()
    assert [t.id for t in tasks] == ["task-1", "task-9"]
    got = tasks[1]
    assert (got.args, got.kwargs) == ((), {})
    assert type(got.status) is TaskStatus and got.status is TaskStatus.PAUSED
    assert (got.interval_seconds, got.run_once, got.next_run_at) == (None, True, None)
    assert (got.timeout_seconds, got.max_retries, got.retry_attempt) == (1.5, 2, 1)
    assert (got.jitter_seconds, got.rerun_requested, got.fixed_interval) == (0.25, True, True)
    assert tasks[0].next_run_at == T0 and tasks[0].next_run_at.tzinfo is timezone.utc


async def test_arguments_whose_repr_raises_are_no_trouble(make_store: StoreFactory) -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    async with running(make_store()) as store:
        store.put_task(make_task(args=("x" * 10_000, Broken()), kwargs={"b": Broken()}))
        (got,) = await store.get_tasks()
    assert (got.args, got.kwargs) == ((), {})


async def test_task_updates_replace_and_deletion_keeps_job_history(
    make_store: StoreFactory,
) -> None:
    async with running(make_store()) as store:
        store.put_task(make_task(status=TaskStatus.ACTIVE))
        store.put_job(make_job("job-1"))
        await store.flush()
        store.put_task(make_task(status=TaskStatus.RUNNING))
        assert [t.status for t in await store.get_tasks()] == [TaskStatus.RUNNING]
        store.delete_task("task-1")
        assert await store.get_tasks() == []
        assert await store.get_job("job-1") is not None
        store.put_task(make_task())  # deleted then re-added: present again
        assert len(await store.get_tasks()) == 1


async def test_reads_see_every_earlier_write(make_store: StoreFactory) -> None:
    async with running(make_store()) as store:
        job = make_job("job-1")
        states = job_lifecycle(job)
        for state in states:
            store.put_job(state)
            assert await store.get_job("job-1") == state
        for i in range(50):
            for state in job_lifecycle(make_job(f"job-{i + 2}")):
                store.put_job(state)
        assert await store.count_jobs() == 51
        jobs = await store.get_jobs(JobQuery(status=JobStatus.COMPLETED))
        assert len(jobs) == 51
        assert await store.get_job("missing") is None
        assert store.pending_writes == 0


def _ids(jobs: list[Any]) -> list[str]:
    return [job.id for job in jobs]


async def test_get_jobs_filters(make_store: StoreFactory) -> None:
    jobs = [
        make_job("a", task_id="t1", status=JobStatus.COMPLETED, started_at=at(0)),
        make_job("b", task_id="t1", status=JobStatus.FAILED, started_at=at(10)),
        make_job("c", task_id="t2", status=JobStatus.COMPLETED, started_at=at(20)),
        make_job("d", task_id="t2", status=JobStatus.RUNNING, started_at=at(30)),
        make_job("e", task_id="t1", status=JobStatus.SCHEDULED, started_at=None),
    ]
    async with running(make_store()) as store:
        for job in jobs:
            store.put_job(job)

        async def ids(**filters: Any) -> list[str]:
            return _ids(await store.get_jobs(JobQuery(descending=False, **filters)))

        assert await ids() == ["a", "b", "c", "d", "e"]
        assert await ids(status=JobStatus.COMPLETED) == ["a", "c"]
        assert await ids(status="running") == ["d"]
        assert await ids(task_id="t1") == ["a", "b", "e"]
        assert await ids(task_id="t1", status=JobStatus.FAILED) == ["b"]
        # since is inclusive, until exclusive; jobs that never started match neither
        assert await ids(since=at(10)) == ["b", "c", "d"]
        assert await ids(until=at(20)) == ["a", "b"]
        assert await ids(since=at(10), until=at(30)) == ["b", "c"]
        # other time zones and naive (UTC) bounds mean the same instants
        plus_five = timezone(timedelta(hours=5))
        assert await ids(since=at(10).astimezone(plus_five)) == ["b", "c", "d"]
        assert await ids(until=at(20).replace(tzinfo=None)) == ["a", "b"]
        assert await ids(task_id="nope") == []


async def test_get_jobs_order_puts_nulls_last_both_ways(make_store: StoreFactory) -> None:
    jobs = [
        make_job("a", started_at=at(20), ended_at=at(21), scheduled_at=at(1)),
        make_job("b", status=JobStatus.SCHEDULED, started_at=None, scheduled_at=at(3)),
        make_job("c", started_at=at(10), ended_at=at(50), scheduled_at=None),
        make_job("d", status=JobStatus.RUNNING, started_at=at(30), scheduled_at=at(2)),
        make_job("e", status=JobStatus.SCHEDULED, started_at=None, scheduled_at=at(4)),
    ]
    async with running(make_store()) as store:
        for job in jobs:
            store.put_job(job)

        async def ids(order_by: Any, descending: bool) -> list[str]:
            query = JobQuery(order_by=order_by, descending=descending)
            return _ids(await store.get_jobs(query))

        assert await ids("started_at", True) == ["d", "a", "c", "e", "b"]
        assert await ids("started_at", False) == ["c", "a", "d", "b", "e"]
        assert await ids("ended_at", True) == ["c", "a", "e", "d", "b"]
        assert await ids("ended_at", False) == ["a", "c", "b", "d", "e"]
        assert await ids("scheduled_at", True) == ["e", "b", "d", "a", "c"]
        assert await ids("scheduled_at", False) == ["a", "d", "b", "e", "c"]


async def test_get_jobs_ties_keep_insertion_order(make_store: StoreFactory) -> None:
    async with running(make_store()) as store:
        for name in "abc":
            store.put_job(make_job(name, started_at=T0))
        store.put_job(make_job("a", started_at=T0, attempt=2))  # an update keeps its place
        assert _ids(await store.get_jobs(JobQuery(descending=False))) == ["a", "b", "c"]
        assert _ids(await store.get_jobs(JobQuery(descending=True))) == ["c", "b", "a"]


async def test_get_jobs_limit_and_offset(make_store: StoreFactory) -> None:
    async with running(make_store()) as store:
        for i in range(10):
            store.put_job(make_job(f"j{i}", started_at=at(i)))

        async def ids(limit: int | None, offset: int) -> list[str]:
            query = JobQuery(descending=False, limit=limit, offset=offset)
            return _ids(await store.get_jobs(query))

        assert await ids(3, 0) == ["j0", "j1", "j2"]
        assert await ids(3, 8) == ["j8", "j9"]
        assert await ids(None, 7) == ["j7", "j8", "j9"]
        assert await ids(0, 0) == []
        assert await ids(5, 20) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order_by", "started_at; DROP TABLE jobs"),
        ("order_by", "id"),
        ("status", "bogus"),
        ("limit", -1),
        ("limit", 2.5),
        ("offset", -3),
        ("offset", None),
    ],
)
async def test_get_jobs_rejects_bad_values(
    make_store: StoreFactory, field: str, value: Any
) -> None:
    async with running(make_store()) as store:
        store.put_job(make_job("a"))
        with pytest.raises(ConfigurationError, match=field):
            await store.get_jobs(JobQuery(**{field: value}))
        assert await store.count_jobs() == 1  # nothing was dropped


async def test_prune_removes_old_finished_jobs_only(make_store: StoreFactory) -> None:
    now = at(10_000)
    old, recent = now - timedelta(hours=2), now - timedelta(minutes=5)
    async with running(make_store(history_retention_seconds=3600)) as store:
        for status in (JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.FAILED):
            store.put_job(make_job(f"old-{status}", status=status, started_at=old, ended_at=old))
            store.put_job(make_job(f"new-{status}", status=status, ended_at=recent))
        # running and scheduled jobs stay, whatever their timestamps say
        store.put_job(make_job("running", status=JobStatus.RUNNING, started_at=old, ended_at=old))
        store.put_job(make_job("scheduled", status=JobStatus.SCHEDULED, scheduled_at=old))
        assert await store.prune(now) == 3
        left = _ids(await store.get_jobs(JobQuery(descending=False)))
        assert sorted(left) == sorted(
            ["new-completed", "new-cancelled", "new-failed", "running", "scheduled"]
        )
        assert await store.prune(now) == 0


async def test_zero_retention_prunes_every_finished_job(make_store: StoreFactory) -> None:
    async with running(make_store(history_retention_seconds=0)) as store:
        store.put_job(make_job("done", ended_at=at(1)))
        store.put_job(make_job("running", status=JobStatus.RUNNING))
        assert await store.prune(at(1)) == 0  # ended_at must be strictly older
        assert await store.prune(at(1.000001)) == 1
        assert _ids(await store.get_jobs(JobQuery())) == ["running"]


async def test_infinite_retention_keeps_everything(make_store: StoreFactory) -> None:
    async with running(make_store(history_retention_seconds=float("inf"))) as store:
        store.put_job(make_job("done", ended_at=datetime(1990, 1, 1, tzinfo=timezone.utc)))
        assert await store.prune(at(0)) == 0
        assert await store.count_jobs() == 1


async def test_background_pruning_runs_at_start(make_store: StoreFactory) -> None:
    logger, recorder = recording_logger()
    ancient = datetime(2000, 1, 1, tzinfo=timezone.utc)
    store = make_store(history_retention_seconds=60, logger=logger)
    # writes queued before start are kept and written once the store runs
    store.put_job(make_job("old-1", started_at=ancient, ended_at=ancient))
    store.put_job(make_job("old-2", status=JobStatus.FAILED, started_at=ancient, ended_at=ancient))
    store.put_job(make_job("keep", status=JobStatus.RUNNING, started_at=ancient))
    async with running(store):
        with anyio.fail_after(10):
            await recorder.wait_for(lambda r: "pruned 2 finished jobs" in r.getMessage())
        assert _ids(await store.get_jobs(JobQuery())) == ["keep"]


@pytest.mark.parametrize("value", [-1, float("nan"), "5", True, None])
def test_retention_is_validated(make_store: StoreFactory, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="history_retention_seconds"):
        make_store(history_retention_seconds=value)


async def test_nothing_is_pickled(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store must never pickle")

    for name in ("dumps", "loads", "dump", "load", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    lock = anyio.Lock()
    async with running(make_store()) as store:
        store.put_task(make_task(args=(lambda: 1, lock), kwargs={"gen": (i for i in range(3))}))
        store.put_job(make_job("j"))
        (task,) = await store.get_tasks()
        assert await store.get_job("j") is not None
    assert (task.args, task.kwargs) == ((), {})


async def test_lifecycle_errors(make_store: StoreFactory) -> None:
    logger, recorder = recording_logger()
    store = make_store(logger=logger)
    with pytest.raises(StoreError):
        await store.get_job("x")
    with pytest.raises(StoreError):
        await store.flush()
    async with anyio.create_task_group() as tg:
        await store.start(tg)
        with pytest.raises(StoreError, match="started already"):
            await store.start(tg)
        store.put_job(make_job("j"))
        await store.aclose()
    await store.aclose()  # twice is fine
    for read in (store.flush(), store.get_job("j"), store.get_jobs(JobQuery()), store.count_jobs()):
        with pytest.raises(StoreError):
            await read
    # late puts never raise into the engine: they are reported and dropped
    store.put_job(make_job("late"))
    store.put_task(make_task())
    store.delete_task("task-1")
    assert store.pending_writes == 0
    assert len(recorder.messages(logging.WARNING)) == 3


async def test_aclose_is_shielded_from_cancellation(make_store: StoreFactory) -> None:
    store = make_store()
    async with anyio.create_task_group() as tg:
        await store.start(tg)
        store.put_job(make_job("j"))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.aclose()
    with pytest.raises(StoreError):
        await store.count_jobs()


async def test_a_record_that_cannot_be_stored_is_dropped_alone(make_store: StoreFactory) -> None:
    logger, recorder = recording_logger()
    async with running(make_store(logger=logger)) as store:
        store.put_job(make_job("bad", status="bogus", ended_at=at(1)))  # type: ignore[arg-type]
        store.put_job(make_job("good"))
        store.put_task(make_task("bad-task", max_retries="many"))
        store.put_task(make_task("good-task"))
        assert _ids(await store.get_jobs(JobQuery())) == ["good"]
        assert [t.id for t in await store.get_tasks()] == ["good-task"]
    dropped = [m for m in recorder.messages(logging.ERROR) if "dropping" in m]
    assert any("'bad'" in m for m in dropped)
    assert any("'bad-task'" in m for m in dropped)
