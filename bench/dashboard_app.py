"""The app ``bench/dashboard.py`` measures: an AsyncQuiv under uvicorn with the dashboard at /quiv.

Control routes (not the dashboard's):

- ``POST /bench/progress?reports=N&gap=S``: starts a job that reports
  ``done`` 1..N, *S* seconds apart, and records the wall time of each report;
  ``GET /bench/progress`` returns ``{done: unix time}``.
- ``POST /bench/w1?jobs=N``: W1 on this server's scheduler: *N* run-once
  no-op sync jobs added as fast as possible; answers when every one has
  completed (seen by a ``JOB_COMPLETED`` listener) with the jobs a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from quiv import AsyncQuiv, Event
from quiv.dashboard import allow_all, dashboard
from quiv.integrations.starlette import lifespan

scheduler = AsyncQuiv(pool_size=10)
sent: dict[int, float] = {}


def reporter(reports: int, gap: float) -> Callable[..., None]:
    def handler(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> None:
        for done in range(1, reports + 1):
            sent[done] = time.time()
            _progress_hook(done=done, total=reports)
            if _stop_event.wait(gap):
                return

    return handler


async def progress(request: Request) -> JSONResponse:
    if request.method == "GET":
        return JSONResponse({str(k): v for k, v in sent.items()})
    sent.clear()
    reports = int(request.query_params.get("reports", "50"))
    gap = float(request.query_params.get("gap", "0.2"))
    await scheduler.add_task("latency", reporter(reports, gap), run_once=True)
    return JSONResponse({"ok": True})


def noop() -> None:
    pass


async def w1(request: Request) -> JSONResponse:
    jobs = int(request.query_params.get("jobs", "5000"))
    done = anyio.Event()
    count = 0

    def on_completed(*_: object) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    scheduler.add_listener(Event.JOB_COMPLETED, on_completed)
    try:
        start = time.perf_counter()
        for _ in range(jobs):
            await scheduler.add_task("noop", noop, run_once=True)
        with anyio.fail_after(120):
            await done.wait()
        elapsed = time.perf_counter() - start
    finally:
        scheduler.remove_listener(Event.JOB_COMPLETED, on_completed)
    return JSONResponse({"jobs": jobs, "seconds": elapsed, "jobs_per_s": jobs / elapsed})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"running": scheduler.is_running})


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/bench/progress", progress, methods=["GET", "POST"]),
        Route("/bench/w1", w1, methods=["POST"]),
        Mount("/quiv", dashboard(scheduler, auth=allow_all)),
    ],
    lifespan=lifespan(scheduler, shutdown_timeout=2),
)
