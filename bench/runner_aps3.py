"""APScheduler 3.11: ``AsyncIOScheduler`` with a ``ThreadPoolExecutor(10)``.

Sync jobs run in the thread pool; ``async def`` jobs in an ``AsyncIOExecutor``
(on the host loop: APScheduler 3 has no other way to run a coroutine job).
``misfire_grace_time=None`` so no late job is silently skipped. Completion is
the ``EVENT_JOB_EXECUTED``/``EVENT_JOB_ERROR`` listener, which APScheduler
calls in the worker thread for pool jobs and on the loop for asyncio jobs.

Run: ``python -m bench.runner_aps3 <workload> <params-json>`` in the aps3 venv.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bench.common import (
    Countdown,
    Result,
    cadence,
    cron_workload,
    fire,
    idle_tail,
    lateness,
    noop,
    now,
    rss_baseline,
    run_cli,
    throughput,
    unsupported,
    w3_delays,
)

STARTS: dict[int, list[float]] = {}


def mark(i: int) -> None:
    STARTS.setdefault(i, []).append(now())


async def async_noop() -> None:
    pass


def _run(body: Callable[[AsyncIOScheduler], Awaitable[Result]]) -> Callable[[], Result]:
    async def main() -> Result:
        scheduler = AsyncIOScheduler(
            executors={"default": ThreadPoolExecutor(10), "asyncio": AsyncIOExecutor()},
            job_defaults={"misfire_grace_time": None},
            timezone=timezone.utc,
        )
        scheduler.start()
        try:
            return await body(scheduler)
        finally:
            scheduler.shutdown(wait=False)

    return lambda: asyncio.run(main())


def _count_into(scheduler: AsyncIOScheduler, countdown: Countdown) -> None:
    def listener(event: JobExecutionEvent) -> None:
        countdown.hit(failed=event.exception is not None)

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)


def throughput_run(params: dict[str, Any], is_async: bool) -> Result:
    n = params["jobs"]

    async def body(scheduler: AsyncIOScheduler) -> Result:
        done = Countdown(n)
        _count_into(scheduler, done)
        t0 = now()
        for _ in range(n):
            if is_async:
                scheduler.add_job(async_noop, executor="asyncio")
            else:
                scheduler.add_job(noop)
        t_added = now()
        await done.wait(params["limit_s"])
        result = throughput(n, t0, t_added, done.t_done, done.count)
        return result.na("no job history in APScheduler 3", "recorded")

    return _run(body)()


def w3(params: dict[str, Any]) -> Result:
    delays = w3_delays(params)

    async def body(scheduler: AsyncIOScheduler) -> Result:
        done = Countdown(len(delays))
        _count_into(scheduler, done)
        intended: dict[int, float] = {}
        for i, delay in enumerate(delays):
            run_date = datetime.now(timezone.utc) + timedelta(seconds=delay)
            intended[i] = now() + delay
            scheduler.add_job(mark, "date", run_date=run_date, args=(i,))
        await done.wait(params["limit_s"])
        return lateness(intended, {i: s[0] for i, s in STARTS.items()})

    return _run(body)()


def w4(params: dict[str, Any]) -> Result:
    async def body(scheduler: AsyncIOScheduler) -> Result:
        added: dict[int, float] = {}
        for i in range(params["tasks"]):
            added[i] = now()
            scheduler.add_job(
                mark,
                "interval",
                seconds=params["interval"],
                next_run_time=datetime.now(timezone.utc),
                args=(i,),
            )
        await asyncio.sleep(max(added.values()) + params["duration"] - now() + 0.05)
        scheduler.remove_all_jobs()
        return cadence(STARTS, added, params)

    return _run(body)()


def w5(params: dict[str, Any]) -> Result:
    n = params["tasks"]

    async def body(scheduler: AsyncIOScheduler) -> Result:
        rss0 = rss_baseline()
        run_date = datetime.now(timezone.utc) + timedelta(seconds=params["delay"])
        t0 = now()
        for _ in range(n):
            scheduler.add_job(noop, "date", run_date=run_date)
        result = Result().set(add_per_s=n / (now() - t0))
        await idle_tail(asyncio.sleep, params, result, rss0)
        return result

    return _run(body)()


def w11(params: dict[str, Any]) -> Result:
    async def body(scheduler: AsyncIOScheduler) -> Result:
        async def add_cron(expr: str) -> Job:
            return scheduler.add_job(noop, CronTrigger.from_crontab(expr, timezone=timezone.utc))

        async def add_tick(i: int, first: float) -> Job:
            start = datetime.fromtimestamp(first, timezone.utc)
            return scheduler.add_job(
                fire, "interval", seconds=1, start_date=start, args=("interval", i)
            )

        async def add_every_second(i: int) -> Job:
            # from_crontab has no seconds field: the keyword form
            trigger = CronTrigger(second="*", timezone=timezone.utc)
            return scheduler.add_job(fire, trigger, args=("cron", i))

        async def remove(job: Job) -> None:
            job.remove()

        return await cron_workload(
            params, asyncio.sleep, add_cron, add_tick, add_every_second, remove
        )

    return _run(body)()


def w9(params: dict[str, Any]) -> Result:
    """The host's requests while the scheduler runs a steady load (see bench/w9.py)."""
    from bench.w9 import async_job, serve_under_load, sync_job

    async def body(scheduler: AsyncIOScheduler) -> Result:
        return await serve_under_load(
            params,
            lambda: scheduler.add_job(sync_job),
            lambda: scheduler.add_job(async_job, executor="asyncio"),
        )

    return _run(body)()


if __name__ == "__main__":
    run_cli(
        {
            "w1": lambda p: throughput_run(p, is_async=False),
            "w2": lambda p: throughput_run(p, is_async=True),
            "w3": w3,
            "w4": w4,
            "w5": w5,
            "w6": unsupported("APScheduler 3 has no way to cancel a running job"),
            "w7": unsupported("APScheduler 3 has no progress hook"),
            "w8": unsupported("APScheduler 3 has no call_on_main"),
            "w9": w9,
            "w10": unsupported("W10 measures quiv's own shutdown bound and job store"),
            "w11": w11,
        }
    )
