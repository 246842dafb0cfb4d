"""The SQLite store writes in batches, not one commit per job.

What is asserted is the batching (how many transactions a burst costs, and
that every row lands); how fast it writes is measured in ``bench/`` (W9).
``-m slow`` adds a 50,000-job burst.
"""

from __future__ import annotations

from typing import cast

import anyio
import pytest
from store_helpers import ProbeConnection, job_lifecycle, make_job, probe_factory, running

from quiv._store import SQLiteStore


async def _burst_commits(jobs: int) -> int:
    """Put *jobs* jobs' three states with no loop turn in between; the commits it took."""
    store = SQLiteStore(connection_factory=probe_factory)
    records = [job_lifecycle(make_job(f"job-{i}")) for i in range(jobs)]
    async with running(store):
        conn = cast(ProbeConnection, store.connection)
        before = conn.commits
        for states in records:
            for state in states:
                store.put_job(state)
        await store.flush()
        commits = conn.commits - before
        assert await store.count_jobs() == jobs
    return commits


async def test_a_burst_of_5000_jobs_commits_once() -> None:
    assert await _burst_commits(5000) == 1


@pytest.mark.slow
async def test_a_burst_of_50000_jobs_commits_once() -> None:
    assert await _burst_commits(50_000) == 1


async def test_interleaved_writes_batch_naturally() -> None:
    """Jobs put one at a time with the loop running in between still share commits."""
    jobs = 5000
    store = SQLiteStore(connection_factory=probe_factory)
    async with running(store):
        conn = cast(ProbeConnection, store.connection)
        before = conn.commits
        for i in range(jobs):
            for state in job_lifecycle(make_job(f"job-{i}")):
                store.put_job(state)
                await anyio.lowlevel.checkpoint()
        await store.flush()
        commits = conn.commits - before
        assert commits < jobs
        assert await store.count_jobs() == jobs
