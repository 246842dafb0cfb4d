"""Write throughput of the SQLite store: batches, not one commit per job.

Run with ``-s`` to see the numbers; ``-m slow`` adds a 50,000-job run.
"""

from __future__ import annotations

import time
from typing import cast

import anyio
import pytest
from store_helpers import ProbeConnection, job_lifecycle, make_job, probe_factory, running

from quiv._store import SQLiteStore


def _report(label: str, jobs: int, puts: float, flush: float, commits: int) -> None:
    print(  # noqa: T201 - the numbers are the point of this test
        f"\n{label}: {jobs} jobs x 3 puts: queueing {puts * 1e3:.1f} ms,"
        f" commit {flush * 1e3:.1f} ms, {commits} transaction(s)"
    )


async def _burst(jobs: int, anyio_backend_name: str) -> float:
    store = SQLiteStore(connection_factory=probe_factory)
    records = [job_lifecycle(make_job(f"job-{i}")) for i in range(jobs)]
    async with running(store):
        conn = cast(ProbeConnection, store.connection)
        before = conn.commits
        start = time.perf_counter()
        for states in records:
            for state in states:
                store.put_job(state)
        queued = time.perf_counter()
        await store.flush()
        done = time.perf_counter()
        _report(
            f"{anyio_backend_name} burst",
            jobs,
            queued - start,
            done - queued,
            conn.commits - before,
        )
        assert conn.commits - before == 1
        assert await store.count_jobs() == jobs
    return done - queued


async def test_burst_of_5000_jobs_commits_once_and_fast(anyio_backend_name: str) -> None:
    elapsed = await _burst(5000, anyio_backend_name)
    assert elapsed < 2.0  # measured ~30 ms; the bound only catches per-row commits


@pytest.mark.slow
async def test_burst_of_50000_jobs(anyio_backend_name: str) -> None:
    await _burst(50_000, anyio_backend_name)


async def test_interleaved_writes_batch_naturally(anyio_backend_name: str) -> None:
    """Jobs put one at a time with the loop running in between still share commits."""
    jobs = 5000
    store = SQLiteStore(connection_factory=probe_factory)
    async with running(store):
        conn = cast(ProbeConnection, store.connection)
        before = conn.commits
        start = time.perf_counter()
        for i in range(jobs):
            for state in job_lifecycle(make_job(f"job-{i}")):
                store.put_job(state)
                await anyio.lowlevel.checkpoint()
        queued = time.perf_counter()
        await store.flush()
        done = time.perf_counter()
        commits = conn.commits - before
        _report(f"{anyio_backend_name} interleaved", jobs, queued - start, done - queued, commits)
        assert commits < jobs
        assert await store.count_jobs() == jobs
