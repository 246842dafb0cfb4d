"""Stress: thousands of run-once jobs with random cancels, timeouts and failures.

Counts must add up three ways (listeners, the job history, ``stats()``), every
job must end the way its kind says, and nothing may be left behind: no thread
running quiv code, no file descriptor, no memory once the history is pruned.
The sizes here run in seconds; ``-m slow`` runs ten times as many.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import WAIT, join_threads, pool_threads, threads_running_quiv_code

from quiv import AsyncQuiv, Event, Job, JobStatus, Task

N = 10_000
N_SLOW = 100_000
#: a timed-out job waits this long at most (seconds of the real clock)
TIMEOUT = 0.005
#: a job that only ends when cancelled gives up after this long (then "completed": a failure)
GIVE_UP = WAIT


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def quiet_logger() -> logging.Logger:
    """A logger that keeps nothing: a thousand failure tracebacks captured by
    pytest would cost time and memory that are not quiv's."""
    logger = logging.getLogger(f"quiv.stress.{id(object())}")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    # Not even a record is made: whatever other tests did to logging (a handler
    # that keeps records, say), nothing here can hold on to them.
    logger.setLevel(logging.CRITICAL + 1)
    return logger


# -- the workload ----------------------------------------------------------------------


def quick() -> None:
    pass


async def quick_async() -> None:
    await anyio.lowlevel.checkpoint()


def raises() -> None:
    raise ValueError("stress")


def waits_for_stop(_stop_event: threading.Event) -> None:
    _stop_event.wait(GIVE_UP)


async def sleeps() -> None:
    await anyio.sleep(GIVE_UP)


#: kind -> (handler, timeout, share of the jobs)
KINDS: dict[str, tuple[Any, float | None, float]] = {
    "quick": (quick, None, 0.45),
    "quick_async": (quick_async, None, 0.15),
    "fails": (raises, None, 0.10),
    "times_out": (waits_for_stop, TIMEOUT, 0.06),
    "times_out_async": (sleeps, TIMEOUT, 0.04),
    "cancel_target": (waits_for_stop, None, 0.12),
    "cancel_target_async": (sleeps, None, 0.08),
}


@dataclass
class Plan:
    kinds: dict[str, str] = field(default_factory=dict)  # task id -> kind
    cancelled: dict[str, bool] = field(default_factory=dict)  # task id -> cancel_job() result
    ends: list[Job] = field(default_factory=list)


def expected(kind: str, cancel: bool | None) -> tuple[JobStatus, str | None]:
    if kind.startswith("cancel_target") or cancel:
        return JobStatus.CANCELLED, "cancelled by cancel_job()"
    if kind.startswith("times_out"):
        return JobStatus.CANCELLED, f"timed out after {TIMEOUT:g} s"
    if kind == "fails":
        return JobStatus.FAILED, "ValueError: stress"
    return JobStatus.COMPLETED, None


async def run_workload(s: AsyncQuiv, n: int, seed: int) -> Plan:
    """Add *n* run-once jobs in batches; after each batch cancel the targets and
    a few random others; wait until all have ended."""
    rng = random.Random(seed)
    plan = Plan()
    done = anyio.Event()

    def on_end(event: Event, task: Task, job: Job) -> None:
        plan.ends.append(job)
        if len(plan.ends) == n:
            done.set()

    ends = (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED)
    for event in ends:
        s.add_listener(event, on_end)
    try:
        await _add_and_cancel(s, n, rng, plan)
        with anyio.fail_after(60):
            await done.wait()
    finally:
        for event in ends:
            s.remove_listener(event, on_end)
    return plan


async def _add_and_cancel(s: AsyncQuiv, n: int, rng: random.Random, plan: Plan) -> None:
    names = list(KINDS)
    weights = [KINDS[k][2] for k in names]
    added = 0
    while added < n:
        batch = min(500, n - added)
        for kind in rng.choices(names, weights, k=batch):
            func, timeout, _ = KINDS[kind]
            task_id = await s.add_task(kind, func, run_once=True, timeout=timeout)
            plan.kinds[task_id] = kind
        added += batch
        in_flight = [
            *await s.get_all_jobs(status=JobStatus.SCHEDULED),
            *await s.get_all_jobs(status=JobStatus.RUNNING),
        ]
        for job in in_flight:
            kind = plan.kinds[job.task_id]
            if kind.startswith("cancel_target"):
                assert s.cancel_job(job.id), job
                plan.cancelled[job.task_id] = True
            elif kind.startswith("quick") and rng.random() < 0.05:
                plan.cancelled[job.task_id] = s.cancel_job(job.id)


def check(plan: Plan, n: int, history: list[Job], history_count: int) -> Counter[JobStatus]:
    assert len(plan.ends) == n
    assert len({job.id for job in plan.ends}) == n, "a job ended twice"
    by_status = Counter(job.status for job in plan.ends)
    assert (
        by_status[JobStatus.COMPLETED]
        + by_status[JobStatus.CANCELLED]
        + by_status[JobStatus.FAILED]
        == n
    )
    assert history_count == n
    assert len(history) == n
    assert {job.id: job for job in history} == {job.id: job for job in plan.ends}
    for job in plan.ends:
        kind = plan.kinds[job.task_id]
        status, message = expected(kind, plan.cancelled.get(job.task_id))
        assert (job.status, job.error_message) == (status, message), (kind, job)
        if job.started_at is None:
            assert job.status is JobStatus.CANCELLED, job
    # every kind happened, and cancels hit queued as well as running jobs
    assert set(plan.kinds.values()) == set(KINDS)
    cancelled = [j for j in plan.ends if j.error_message == "cancelled by cancel_job()"]
    assert any(j.started_at is None for j in cancelled)
    assert any(j.started_at is not None for j in cancelled)
    return by_status


async def stress(n: int) -> None:
    threads_before = set(threading.enumerate())
    # warm the backend's thread cache and lazily opened descriptors first
    async with AsyncQuiv(pool_size=8, logger=quiet_logger()) as s:
        await run_workload(s, 200, seed=1)
    await _threads_exited()
    fds = open_fds()
    async with AsyncQuiv(pool_size=8, logger=quiet_logger()) as s:
        plan = await run_workload(s, n, seed=2)
        history = await s.get_all_jobs()
        stats = await s.stats()
        assert stats.active_jobs == 0
        assert stats.tasks_by_status == {"active": 0, "running": 0, "paused": 0}
    check(plan, n, history, stats.job_history_count)
    await _threads_exited()
    new = {t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()}
    assert all(name.startswith(("AnyIO worker", "Trio thread")) for name in new), new
    assert open_fds() - fds == set()  # nothing left open


async def _threads_exited() -> None:
    """The stopped scheduler's worker threads exit (joined, bounded); none runs quiv code."""
    assert await join_threads(pool_threads(), WAIT) == []
    assert threads_running_quiv_code() == []


async def test_ten_thousand_jobs_with_cancels_timeouts_and_failures() -> None:
    await stress(N)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_hundred_thousand_jobs_with_cancels_timeouts_and_failures() -> None:
    await stress(N_SLOW)


# -- memory after pruning --------------------------------------------------------------


async def memory_after(n: int) -> tuple[int, int, list[tracemalloc.StatisticDiff]]:
    """Traced bytes before *n* jobs and after their history is pruned, and the
    difference line by line."""
    settings: dict[str, Any] = {"db_path": ":memory:", "history_retention_seconds": 0}
    async with AsyncQuiv(pool_size=8, logger=quiet_logger(), **settings) as s:
        await run_workload(s, 200, seed=3)  # warm up: caches, thread pool, listeners
        await _pruned(s)
        gc.collect()
        tracemalloc.start()
        try:
            before_snapshot = tracemalloc.take_snapshot()
            before = tracemalloc.get_traced_memory()[0]
            await run_workload(s, n, seed=4)
            await _pruned(s)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            diff = tracemalloc.take_snapshot().compare_to(before_snapshot, "lineno")
        finally:
            tracemalloc.stop()
    return before, after, diff


async def _pruned(s: AsyncQuiv) -> None:
    """Wait for the pruning pass (every second with a retention of 0)."""
    with anyio.fail_after(WAIT):
        while (await s.stats()).job_history_count:
            await anyio.sleep(0.05)


async def test_memory_returns_to_baseline_after_pruning() -> None:
    n = 5000
    before, after, diff = await memory_after(n)
    # Nothing is kept per job: a leaked record (or anything else left per job)
    # would show as thousands of new blocks from one line.
    per_job = [line for line in diff if line.count_diff >= n // 10]
    assert per_job == [], per_job[:5]
    # What remains is a few dicts' tables, sized for the peak of jobs in flight
    # (CPython does not shrink them): bounded, whatever the number of jobs.
    assert after - before < 1_000_000, (before, after, diff[:5])
