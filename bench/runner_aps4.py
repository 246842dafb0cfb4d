"""APScheduler 4.0.0a6: ``AsyncScheduler`` with the memory store, on asyncio.

Sync jobs run in a ``ThreadPoolJobExecutor(max_workers=10)``; ``async def``
jobs in the ``async`` executor (on the scheduler's loop, APScheduler 4's own
way). Tasks get ``max_running_jobs=None`` where jobs of one task may run side
by side (W1-W3) and 1 for the recurring tasks of W4. Completion is the
``JobReleased`` event, subscribed on the loop.

Run: ``python -m bench.runner_aps4 <workload> <params-json>`` in the aps4 venv.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler import AsyncScheduler, JobOutcome, JobReleased
from apscheduler.executors.async_ import AsyncJobExecutor
from apscheduler.executors.thread import ThreadPoolJobExecutor
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

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


def _run(body: Callable[[AsyncScheduler], Awaitable[Result]]) -> Callable[[], Result]:
    async def main() -> Result:
        executors = {
            "threadpool": ThreadPoolJobExecutor(max_workers=10),
            "async": AsyncJobExecutor(),
        }
        async with AsyncScheduler(job_executors=executors) as scheduler:
            await scheduler.start_in_background()
            try:
                return await body(scheduler)
            finally:
                await scheduler.stop()

    return lambda: asyncio.run(main())


def _count_into(scheduler: AsyncScheduler, countdown: Countdown) -> None:
    def listener(event: JobReleased) -> None:
        countdown.hit(failed=event.outcome is not JobOutcome.success)

    scheduler.subscribe(listener, JobReleased)


def throughput_run(params: dict[str, Any], is_async: bool) -> Result:
    n = params["jobs"]

    async def body(scheduler: AsyncScheduler) -> Result:
        await scheduler.configure_task(
            "job",
            func=async_noop if is_async else noop,
            job_executor="async" if is_async else "threadpool",
            max_running_jobs=None,
        )
        done = Countdown(n)
        _count_into(scheduler, done)
        t0 = now()
        for _ in range(n):
            await scheduler.add_job("job")
        t_added = now()
        await done.wait(params["limit_s"])
        result = throughput(n, t0, t_added, done.t_done, done.count)
        return result.na("results kept only on request; no job history", "recorded")

    return _run(body)()


def w3(params: dict[str, Any]) -> Result:
    delays = w3_delays(params)

    async def body(scheduler: AsyncScheduler) -> Result:
        await scheduler.configure_task(
            "mark", func=mark, job_executor="threadpool", max_running_jobs=None
        )
        done = Countdown(len(delays))
        _count_into(scheduler, done)
        intended: dict[int, float] = {}
        for i, delay in enumerate(delays):
            run_time = datetime.now(timezone.utc) + timedelta(seconds=delay)
            intended[i] = now() + delay
            await scheduler.add_schedule("mark", DateTrigger(run_time), args=(i,))
        await done.wait(params["limit_s"])
        return lateness(intended, {i: s[0] for i, s in STARTS.items()})

    return _run(body)()


def w4(params: dict[str, Any]) -> Result:
    async def body(scheduler: AsyncScheduler) -> Result:
        added: dict[int, float] = {}
        for i in range(params["tasks"]):
            task_id = f"tick{i}"
            await scheduler.configure_task(
                task_id, func=mark, job_executor="threadpool", max_running_jobs=1
            )
            added[i] = now()
            trigger = IntervalTrigger(
                seconds=params["interval"], start_time=datetime.now(timezone.utc)
            )
            await scheduler.add_schedule(task_id, trigger, args=(i,))
        await asyncio.sleep(max(added.values()) + params["duration"] - now() + 0.05)
        return cadence(STARTS, added, params)

    return _run(body)()


def w5(params: dict[str, Any]) -> Result:
    n = params["tasks"]

    async def body(scheduler: AsyncScheduler) -> Result:
        await scheduler.configure_task("later", func=noop, job_executor="threadpool")
        rss0 = rss_baseline()
        run_time = datetime.now(timezone.utc) + timedelta(seconds=params["delay"])
        t0 = now()
        for _ in range(n):
            await scheduler.add_schedule("later", DateTrigger(run_time))
        result = Result().set(add_per_s=n / (now() - t0))
        await idle_tail(asyncio.sleep, params, result, rss0)
        return result

    return _run(body)()


def w11(params: dict[str, Any]) -> Result:
    async def body(scheduler: AsyncScheduler) -> Result:
        await scheduler.configure_task("cron", func=noop, job_executor="threadpool")
        # one task for all firing schedules: no limit, or they would queue behind each other
        await scheduler.configure_task(
            "fire", func=fire, job_executor="threadpool", max_running_jobs=None
        )

        async def add_cron(expr: str) -> str:
            trigger = CronTrigger.from_crontab(expr, timezone=timezone.utc)
            return await scheduler.add_schedule("cron", trigger)

        async def add_tick(i: int, first: float) -> str:
            start = datetime.fromtimestamp(first, timezone.utc)
            trigger = IntervalTrigger(seconds=1, start_time=start)
            return await scheduler.add_schedule("fire", trigger, args=("interval", i))

        async def add_every_second(i: int) -> str:
            # from_crontab has no seconds field: the keyword form
            trigger = CronTrigger(second="*", timezone=timezone.utc)
            return await scheduler.add_schedule("fire", trigger, args=("cron", i))

        result = await cron_workload(
            params, asyncio.sleep, add_cron, add_tick, add_every_second, scheduler.remove_schedule
        )
        if CronTrigger(second="*", timezone=timezone.utc).next().microsecond:
            result.note(
                "its CronTrigger keeps the microseconds of start_time (default: now) in "
                "every fire, so second='*' fires at now + k s, not on whole seconds; "
                "that offset shows as cron lateness"
            )
        return result

    return _run(body)()


def w9(params: dict[str, Any]) -> Result:
    """The host's requests while the scheduler runs a steady load (see bench/w9.py)."""
    from bench.w9 import async_job, serve_under_load, sync_job

    async def body(scheduler: AsyncScheduler) -> Result:
        jobs = (("sync", sync_job, "threadpool"), ("async", async_job, "async"))
        for name, func, executor in jobs:
            await scheduler.configure_task(
                name, func=func, job_executor=executor, max_running_jobs=None
            )
        return await serve_under_load(
            params, lambda: scheduler.add_job("sync"), lambda: scheduler.add_job("async")
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
            "w6": unsupported("APScheduler 4 has no per-job cancel API"),
            "w7": unsupported("APScheduler 4 has no progress hook"),
            "w8": unsupported(
                "APScheduler 4 has no call_on_main (its async jobs already run on the loop)"
            ),
            "w9": w9,
            "w10": unsupported("W10 measures quiv's own shutdown bound and job store"),
            "w11": w11,
        }
    )
