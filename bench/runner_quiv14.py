"""quiv 1.4.0 from PyPI: ``Quiv(pool_size=10, main_loop=<running asyncio loop>)``.

Must run in the quiv14 venv, with the repository root *not* on ``sys.path``
(our own package has the same import name); the runner checks it got 1.4.
Methods are called on the loop thread, as in a FastAPI lifespan. Completion
is the ``JOB_COMPLETED``/``JOB_FAILED``/``JOB_CANCELLED`` listeners, which
quiv 1.4 runs on the main loop. quiv 1.4 injects ``job_id``, ``stop_event``
and ``progress_hook`` (it rejects the underscore spellings since 1.0).

Run: ``python -m bench.runner_quiv14 <workload> <params-json>``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio.from_thread
import anyio.lowlevel

import quiv
from bench.common import (
    Countdown,
    JobEnds,
    Paired,
    Progress,
    Result,
    cadence,
    cancel_latency,
    cancel_phase,
    idle_tail,
    lateness,
    noop,
    now,
    paired_round_trips,
    rss_baseline,
    run_cli,
    throughput,
    unsupported,
    w3_delays,
    watchdog,
)
from quiv import Event, Job, Quiv, Task, call_on_main

if importlib.metadata.version("quiv") != "1.4.0" or "site-packages" not in str(quiv.__file__):
    raise RuntimeError(f"expected quiv 1.4.0 from site-packages, got {quiv.__file__}")

END_EVENTS = (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED)
STARTS: dict[int, list[float]] = {}
STARTED: queue.Queue[str] = queue.Queue()
SEEN: dict[str, float] = {}
#: W8: call_on_main against the bare floor, timed interleaved in the job's thread
PER_CALL: list[Paired] = []
#: W8: the main loop's token for the floor (quiv 1.4 pickles task args: not in them)
MAIN_TOKEN: list[anyio.lowlevel.EventLoopToken] = []


def mark(i: int) -> None:
    STARTS.setdefault(i, []).append(now())


async def async_noop() -> None:
    pass


def spin(check_every: float, stop_event: threading.Event, job_id: str) -> None:
    STARTED.put(job_id)
    if check_every <= 0:  # blocks in wait(), as most handlers do: the floor's case
        stop_event.wait(60.0)
    while not stop_event.is_set():
        time.sleep(check_every)
    SEEN[job_id] = now()


async def sleeper(hold: float, job_id: str) -> None:
    STARTED.put(job_id)
    try:
        await asyncio.sleep(hold)
    finally:
        SEEN[job_id] = now()


def caller(n: int) -> None:
    bare = partial(anyio.from_thread.run_sync, noop, token=MAIN_TOKEN[0])
    PER_CALL.append(paired_round_trips(partial(call_on_main, noop), bare, n))


def _run(body: Callable[[Quiv], Awaitable[Result]]) -> Callable[[], Result]:
    async def main() -> Result:
        loop = asyncio.get_running_loop()
        scheduler = Quiv(pool_size=10, main_loop=loop)
        scheduler.start()
        outcome: Result | BaseException
        try:
            outcome = await body(scheduler)
        except Exception as exc:
            outcome = exc
        guard = watchdog(outcome, 15.0)
        await loop.run_in_executor(None, partial(scheduler.shutdown, timeout=2.0))
        guard.cancel()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return lambda: asyncio.run(main())


def _listen(scheduler: Quiv, on_end: Callable[[Job], None]) -> None:
    def listener(event: Event, task: Task, job: Job) -> None:
        on_end(job)

    for event in END_EVENTS:
        scheduler.add_listener(event, listener)


def throughput_run(params: dict[str, Any], is_async: bool) -> Result:
    n = params["jobs"]

    async def body(scheduler: Quiv) -> Result:
        done = Countdown(n)
        _listen(scheduler, lambda job: done.hit(failed=job.status != "completed"))
        func = async_noop if is_async else noop
        t0 = now()
        for _ in range(n):
            scheduler.add_task(task_name="job", func=func, run_once=True)
        t_added = now()
        await done.wait(params["limit_s"])
        result = throughput(n, t0, t_added, done.t_done, done.count)
        return result.set(recorded=len(scheduler.get_all_jobs(status="completed")))

    return _run(body)()


def w3(params: dict[str, Any]) -> Result:
    delays = w3_delays(params)

    async def body(scheduler: Quiv) -> Result:
        done = Countdown(len(delays))
        _listen(scheduler, lambda job: done.hit())
        intended: dict[int, float] = {}
        for i, delay in enumerate(delays):
            intended[i] = now() + delay
            scheduler.add_task(task_name="mark", func=mark, run_once=True, delay=delay, args=(i,))
        await done.wait(params["limit_s"])
        return lateness(intended, {i: s[0] for i, s in STARTS.items()})

    return _run(body)()


def w4(params: dict[str, Any]) -> Result:
    async def body(scheduler: Quiv) -> Result:
        added: dict[int, float] = {}
        for i in range(params["tasks"]):
            added[i] = now()
            scheduler.add_task(
                task_name=f"tick{i}", func=mark, interval=params["interval"], args=(i,)
            )
        await asyncio.sleep(max(added.values()) + params["duration"] - now() + 0.05)
        return cadence(STARTS, added, params)

    return _run(body)()


def w5(params: dict[str, Any]) -> Result:
    n = params["tasks"]

    async def body(scheduler: Quiv) -> Result:
        rss0 = rss_baseline()
        t0 = now()
        for _ in range(n):
            scheduler.add_task(task_name="later", func=noop, run_once=True, delay=params["delay"])
        result = Result().set(add_per_s=n / (now() - t0))
        await idle_tail(asyncio.sleep, params, result, rss0)
        return result

    return _run(body)()


def w6(params: dict[str, Any]) -> Result:
    never_after = params["never_after"]

    async def start_victim(scheduler: Quiv, func: Callable[..., Any], arg: float) -> str:
        scheduler.add_task(task_name="victim", func=func, run_once=True, args=(arg,))
        loop = asyncio.get_running_loop()
        job_id = await loop.run_in_executor(None, partial(STARTED.get, timeout=10.0))
        await asyncio.sleep(cancel_phase())
        return job_id

    async def body(scheduler: Quiv) -> Result:
        ends = JobEnds()
        _listen(scheduler, lambda job: ends.record(job.id))
        sync_stop: list[float] = []
        sync_event: list[float] = []
        for _ in range(params["cancels"]):
            job_id = await start_victim(scheduler, spin, params["check_every"])
            t_cancel = now()
            scheduler.cancel_job(job_id)
            ended = await ends.wait(job_id, 10.0)
            if job_id in SEEN:
                sync_stop.append(SEEN[job_id] - t_cancel)
            if ended is not None:
                sync_event.append(ended - t_cancel)
        async_stop: list[float] = []
        never: str | None = None
        for _ in range(params["cancels"]):
            job_id = await start_victim(scheduler, sleeper, never_after + 1.0)
            t_cancel = now()
            scheduler.cancel_job(job_id)
            if await ends.wait(job_id, never_after) is None:
                never = f"never: the job still ran {never_after:g} s after cancel_job"
                break
            async_stop.append(SEEN[job_id] - t_cancel)
        return cancel_latency(sync_stop, sync_event, async_stop, never)

    return _run(body)()


def w7(params: dict[str, Any]) -> Result:
    progress = Progress(params["calls"])

    def chatter(progress_hook: Callable[..., None]) -> None:
        progress.produce(progress_hook)

    async def body(scheduler: Quiv) -> Result:
        delivered = asyncio.Event()

        def on_progress(i: int) -> None:
            if progress.receive(i):
                delivered.set()

        scheduler.add_task(
            task_name="chatter", func=chatter, run_once=True, progress_callback=on_progress
        )
        try:
            await asyncio.wait_for(delivered.wait(), params["limit_s"])
        except asyncio.TimeoutError:
            pass
        return progress.result()

    return _run(body)()


def w8(params: dict[str, Any]) -> Result:
    n = params["calls"]

    async def body(scheduler: Quiv) -> Result:
        MAIN_TOKEN.append(anyio.lowlevel.current_token())
        done = Countdown(1)
        _listen(scheduler, lambda job: done.hit(failed=job.status != "completed"))
        scheduler.add_task(task_name="caller", func=caller, run_once=True, args=(n,))
        await done.wait(params["limit_s"])
        result = Result().na("quiv 1.4 has no async variant", "async_us_per_call")
        if not PER_CALL:
            return result.na("the job did not finish", "us_per_call", "floor_us", "x_floor")
        paired = PER_CALL[0]
        return result.set(
            us_per_call=paired.call_s * 1e6, floor_us=paired.floor_s * 1e6, x_floor=paired.ratio
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
            "w6": w6,
            "w7": w7,
            "w8": w8,
            "w9": unsupported("W9 compares the current schedulers (quiv 1.4 needs no uvicorn run)"),
            "w10": unsupported("W10 measures this quiv's shutdown bound and job store"),
            "w11": unsupported("quiv 1.4 has no cron schedules"),
        }
    )
