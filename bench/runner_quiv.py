"""Our quiv (this repository), in three configurations chosen by ``params["system"]``.

- ``quiv-sync``: the ``Quiv`` face. ``start()`` is called inside a running
  asyncio loop (as in a FastAPI lifespan), so that loop is the main loop;
  methods are called on it; ``shutdown()`` at the end.
- ``quiv-async-asyncio`` / ``quiv-async-trio``: ``async with AsyncQuiv(...)``
  under ``anyio.run`` with that backend.

All use ``pool_size=10``. Completion is the ``JOB_COMPLETED``/``JOB_FAILED``/
``JOB_CANCELLED`` listeners (run on the main loop). Handlers declare the
seed's names ``_job_id``, ``_stop_event``, ``_progress_hook``.

Run: ``.venv/bin/python -m bench.runner_quiv <workload> <params-json>`` from
the repository root.
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

import quiv
from bench.common import (
    Paired,
    Progress,
    Result,
    Unsupported,
    cadence,
    cancel_latency,
    cancel_phase,
    cron_workload,
    fire,
    idle_tail,
    lateness,
    noop,
    now,
    paired_round_trips,
    rss_baseline,
    run_cli,
    throughput,
    w3_delays,
    watchdog,
)
from quiv import AsyncQuiv, Event, call_on_main

END_EVENTS = (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED)
STARTS: dict[int, list[float]] = {}
STARTED: queue.Queue[str] = queue.Queue()
SEEN: dict[str, float] = {}
#: W8: call_on_main against the bare floor, timed interleaved in the job's thread
PER_CALL: list[Paired] = []
ASYNC_PER_CALL: list[float] = []


def mark(i: int) -> None:
    STARTS.setdefault(i, []).append(now())


async def async_noop() -> None:
    pass


def spin(check_every: float, _stop_event: threading.Event, _job_id: str) -> None:
    STARTED.put(_job_id)
    if check_every <= 0:  # blocks in wait(), as most handlers do: the floor's case
        _stop_event.wait(60.0)
    while not _stop_event.is_set():
        time.sleep(check_every)
    SEEN[_job_id] = now()


async def sleeper(hold: float, _job_id: str) -> None:
    STARTED.put(_job_id)
    try:
        await anyio.sleep(hold)
    finally:
        SEEN[_job_id] = now()


def caller(n: int, token: anyio.lowlevel.EventLoopToken) -> None:
    bare = partial(anyio.from_thread.run_sync, noop, token=token)
    PER_CALL.append(paired_round_trips(partial(call_on_main, noop), bare, n))


async def async_caller(n: int) -> None:
    call_async = quiv.call_on_main_async  # type: ignore[attr-defined]
    t0 = now()
    for _ in range(n):
        await call_async(noop)
    ASYNC_PER_CALL.append((now() - t0) / n)


class Face:
    """Either face behind one awaitable interface, so workloads are written once."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.scheduler, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


class Ends:
    """Job ends reported by the listeners; wakes the host loop's waiters."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.count = 0
        self.failed = 0
        self.t_last: float | None = None
        self._token = anyio.lowlevel.current_token()
        self._thread = threading.get_ident()
        self._changed = anyio.Event()

    def record(self, event: Event, task: Any, job: Any) -> None:
        self.times.setdefault(job.id, now())
        self.count += 1
        self.failed += job.status != "completed"
        self.t_last = now()
        self.wake()

    def ended(self, job_id: str) -> bool:
        return job_id in self.times

    def wake(self) -> None:
        if threading.get_ident() == self._thread:
            self._fire()
        else:  # listeners should run on the main loop; cope if they do not
            anyio.from_thread.run_sync(self._fire, token=self._token)

    def _fire(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while not predicate():
                await self._changed.wait()
            return True
        return False


@asynccontextmanager
async def open_face(system: str) -> AsyncIterator[Face]:
    if system == "quiv-sync":
        from quiv import Quiv  # type: ignore[attr-defined]

        scheduler = Quiv(pool_size=10)
        scheduler.start()
        try:
            yield Face(scheduler)
        finally:
            await anyio.to_thread.run_sync(partial(scheduler.shutdown, timeout=5.0))
    else:
        async with AsyncQuiv(pool_size=10) as scheduler:
            yield Face(scheduler)


def _run(params: dict[str, Any], body: Callable[[Face, Ends], Awaitable[Result]]) -> Result:
    system = params["system"]

    async def main() -> Result:
        async with open_face(system) as face:
            ends = Ends()
            for event in END_EVENTS:
                await face.call("add_listener", event, ends.record)
            try:
                result = await body(face, ends)
            except Exception as exc:
                watchdog(exc, 15.0)
                raise
            guard = watchdog(result, 15.0)
        guard.cancel()
        return result

    return anyio.run(main, backend="trio" if system == "quiv-async-trio" else "asyncio")


def throughput_run(params: dict[str, Any], is_async: bool) -> Result:
    n = params["jobs"]
    func = async_noop if is_async else noop

    async def body(face: Face, ends: Ends) -> Result:
        t0 = now()
        for _ in range(n):
            await face.call("add_task", task_name="job", func=func, run_once=True)
        t_added = now()
        done = await ends.until(lambda: ends.count >= n, params["limit_s"])
        result = throughput(n, t0, t_added, ends.t_last if done else None, ends.count)
        jobs = await face.call("get_all_jobs", status="completed")
        return result.set(recorded=len(jobs))

    return _run(params, body)


def w3(params: dict[str, Any]) -> Result:
    delays = w3_delays(params)

    async def body(face: Face, ends: Ends) -> Result:
        intended: dict[int, float] = {}
        for i, delay in enumerate(delays):
            intended[i] = now() + delay
            await face.call(
                "add_task", task_name="mark", func=mark, run_once=True, delay=delay, args=(i,)
            )
        await ends.until(lambda: ends.count >= len(delays), params["limit_s"])
        return lateness(intended, {i: s[0] for i, s in STARTS.items()})

    return _run(params, body)


def w4(params: dict[str, Any]) -> Result:
    async def body(face: Face, ends: Ends) -> Result:
        added: dict[int, float] = {}
        for i in range(params["tasks"]):
            added[i] = now()
            await face.call(
                "add_task", task_name=f"tick{i}", func=mark, interval=params["interval"], args=(i,)
            )
        await anyio.sleep(max(added.values()) + params["duration"] - now() + 0.05)
        return cadence(STARTS, added, params)

    return _run(params, body)


def w5(params: dict[str, Any]) -> Result:
    n = params["tasks"]

    async def body(face: Face, ends: Ends) -> Result:
        rss0 = rss_baseline()
        t0 = now()
        for _ in range(n):
            await face.call(
                "add_task", task_name="later", func=noop, run_once=True, delay=params["delay"]
            )
        result = Result().set(add_per_s=n / (now() - t0))
        await idle_tail(anyio.sleep, params, result, rss0)
        return result

    return _run(params, body)


def w6(params: dict[str, Any]) -> Result:
    never_after = params["never_after"]

    async def start_victim(face: Face, func: Callable[..., Any], arg: float) -> str:
        await face.call("add_task", task_name="victim", func=func, run_once=True, args=(arg,))
        job_id = await anyio.to_thread.run_sync(partial(STARTED.get, timeout=10.0))
        await anyio.sleep(cancel_phase())
        return job_id

    async def body(face: Face, ends: Ends) -> Result:
        sync_stop: list[float] = []
        sync_event: list[float] = []
        for _ in range(params["cancels"]):
            job_id = await start_victim(face, spin, params["check_every"])
            t_cancel = now()
            await face.call("cancel_job", job_id)
            if await ends.until(partial(ends.ended, job_id), 10.0):
                sync_event.append(ends.times[job_id] - t_cancel)
            if job_id in SEEN:
                sync_stop.append(SEEN[job_id] - t_cancel)
        async_stop: list[float] = []
        never: str | None = None
        for _ in range(params["cancels"]):
            job_id = await start_victim(face, sleeper, never_after + 1.0)
            t_cancel = now()
            await face.call("cancel_job", job_id)
            if not await ends.until(partial(ends.ended, job_id), never_after):
                never = f"never: the job still ran {never_after:g} s after cancel_job"
                break
            async_stop.append(SEEN[job_id] - t_cancel)
        return cancel_latency(sync_stop, sync_event, async_stop, never)

    return _run(params, body)


def w7(params: dict[str, Any]) -> Result:
    progress = Progress(params["calls"])

    def chatter(_progress_hook: Callable[..., None]) -> None:
        progress.produce(_progress_hook)

    async def body(face: Face, ends: Ends) -> Result:
        finished = [False]

        def on_progress(i: int) -> None:
            if progress.receive(i):
                finished[0] = True
                ends.wake()

        await face.call(
            "add_task",
            task_name="chatter",
            func=chatter,
            run_once=True,
            progress_callback=on_progress,
        )
        await ends.until(lambda: finished[0], params["limit_s"])
        return progress.result()

    return _run(params, body)


def w8(params: dict[str, Any]) -> Result:
    n = params["calls"]

    async def body(face: Face, ends: Ends) -> Result:
        token = anyio.lowlevel.current_token()
        await face.call("add_task", task_name="caller", func=caller, run_once=True, args=(n, token))
        await ends.until(lambda: ends.count >= 1, params["limit_s"])
        result = Result()
        if hasattr(quiv, "call_on_main_async"):
            await face.call(
                "add_task", task_name="caller", func=async_caller, run_once=True, args=(n,)
            )
            await ends.until(lambda: ends.count >= 2, params["limit_s"])
        if ASYNC_PER_CALL:
            result.set(async_us_per_call=ASYNC_PER_CALL[0] * 1e6)
        else:
            result.na("quiv.call_on_main_async missing or failed", "async_us_per_call")
        if not PER_CALL:
            return result.na("the job did not finish", "us_per_call", "floor_us", "x_floor")
        paired = PER_CALL[0]
        return result.set(
            us_per_call=paired.call_s * 1e6, floor_us=paired.floor_s * 1e6, x_floor=paired.ratio
        )

    return _run(params, body)


def w11(params: dict[str, Any]) -> Result:
    from datetime import datetime, timezone

    async def body(face: Face, ends: Ends) -> Result:
        async def add_cron(expr: str) -> str:
            return str(await face.call("add_task", task_name="cron", func=noop, cron=expr))

        async def add_tick(i: int, first: float) -> str:
            return str(
                await face.call(
                    "add_task",
                    task_name="tick",
                    func=fire,
                    interval=1.0,
                    run_at=datetime.fromtimestamp(first, timezone.utc),
                    args=("interval", i),
                )
            )

        async def add_every_second(i: int) -> str:
            return str(
                await face.call(
                    "add_task", task_name="fire", func=fire, cron="* * * * * *", args=("cron", i)
                )
            )

        async def remove(task_id: str) -> None:
            await face.call("remove_task", task_id)

        return await cron_workload(
            params, anyio.sleep, add_cron, add_tick, add_every_second, remove
        )

    return _run(params, body)


# -- W10: shutdown bounds and the store's write rate (quiv only) ---------------------


def stuck(gate: threading.Event, hold: float) -> None:
    """Ignores its stop event: only *gate* (or *hold* seconds) ends it."""
    STARTED.put("stuck")
    gate.wait(hold)


def polite(_stop_event: threading.Event) -> None:
    STARTED.put("polite")
    _stop_event.wait(60.0)


async def timed_shutdown(
    system: str, setup: Callable[[Face], Awaitable[object]], timeout: float, **settings: Any
) -> tuple[float, Any]:
    """Start a scheduler, run *setup* on it, then time ``shutdown(timeout=...)``.

    Return the seconds the call took and what *setup* returned.
    """
    if system == "quiv-sync":
        from quiv import Quiv  # type: ignore[attr-defined]

        scheduler = Quiv(**settings)
        scheduler.start()
        try:
            prepared = await setup(Face(scheduler))
        finally:
            t0 = now()
            await anyio.to_thread.run_sync(partial(scheduler.shutdown, timeout=timeout))
            took = now() - t0
        return took, prepared
    async with AsyncQuiv(**settings) as scheduler:
        try:
            prepared = await setup(Face(scheduler))
        finally:
            t0 = now()
            await scheduler.shutdown(timeout=timeout)
            took = now() - t0
    return took, prepared


async def store_burst(jobs: int) -> float:
    """Seconds to queue and commit *jobs* jobs x 3 states (scheduled, running,
    completed) in the SQLite store, put with no loop turn in between."""
    from dataclasses import replace
    from datetime import datetime, timedelta, timezone

    from quiv import Job, JobStatus
    from quiv._store import SQLiteStore  # internal: no public way to time the writer

    t = datetime(2099, 1, 1, tzinfo=timezone.utc)  # far ahead: pruning never sees it
    states = []
    for i in range(jobs):
        done = Job(
            f"job-{i}", "task", "task", JobStatus.COMPLETED, t, t + timedelta(1), 1.0, None, 1, t
        )
        states.append(replace(done, status=JobStatus.SCHEDULED, started_at=None, ended_at=None))
        states.append(replace(done, status=JobStatus.RUNNING, ended_at=None, duration_seconds=None))
        states.append(done)
    store = SQLiteStore()
    async with anyio.create_task_group() as tg:
        await store.start(tg)
        try:
            t0 = now()
            for state in states:
                store.put_job(state)
            await store.flush()
            took = now() - t0
            assert await store.count_jobs() == jobs
        finally:
            await store.aclose()
    return took


def w10(params: dict[str, Any]) -> Result:
    system = params["system"]
    timeout = params["stuck_timeout"]
    queued = params["queued"]

    async def with_stuck(face: Face) -> threading.Event:
        gate = threading.Event()
        await face.call(
            "add_task", task_name="stuck", func=stuck, run_once=True, args=(gate, timeout + 10.0)
        )
        await anyio.to_thread.run_sync(partial(STARTED.get, timeout=10.0))
        return gate

    async def with_queue(face: Face) -> Ends:
        ends = Ends()
        await face.call("add_listener", Event.JOB_CANCELLED, ends.record)
        await face.call("add_task", task_name="polite", func=polite, run_once=True)
        await anyio.to_thread.run_sync(partial(STARTED.get, timeout=10.0))
        for _ in range(queued):
            await face.call("add_task", task_name="queued", func=noop, run_once=True)
        return ends

    async def main() -> Result:
        stuck_s, gate = await timed_shutdown(system, with_stuck, timeout, pool_size=10)
        gate.set()
        queued_s, ends = await timed_shutdown(system, with_queue, 30.0, pool_size=1)
        burst_s = await store_burst(params["store_jobs"])
        return Result().set(
            stuck_shutdown_ms=stuck_s * 1e3,
            stuck_overshoot_ms=(stuck_s - timeout) * 1e3,
            queued_shutdown_ms=queued_s * 1e3,
            queued_cancelled=ends.count,
            store_rows_per_s=3 * params["store_jobs"] / burst_s,
            store_burst_ms=burst_s * 1e3,
        )

    return anyio.run(main, backend="trio" if system == "quiv-async-trio" else "asyncio")


def w9(params: dict[str, Any]) -> Result:
    """The host's requests while the scheduler runs a steady load (see bench/w9.py)."""
    from bench.w9 import async_job, serve_under_load, sync_job

    system = params["system"]
    if system == "quiv-async-trio":
        raise Unsupported("W9 serves with uvicorn, which runs on asyncio only")

    async def main() -> Result:
        async with open_face(system) as face:
            add = face.scheduler.add_task
            return await serve_under_load(
                params,
                partial(add, "job", sync_job, run_once=True),
                partial(add, "job", async_job, run_once=True),
            )

    return anyio.run(main, backend="asyncio")


if __name__ == "__main__":
    from bench.runner_scale import w12

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
            "w9": w9,
            "w10": w10,
            "w11": w11,
            "w12": w12,
        }
    )
