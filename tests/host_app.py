"""The app that tests/test_integration_host.py serves with several worker processes.

Every worker starts its own scheduler in its lifespan, on the shared SQLite
file named by ``QUIV_TEST_DB``, and declares the same recurring task, as an
app under ``uvicorn --workers N`` or gunicorn does. The handler appends one
line, ``"<pid> <unix time>\\n"``, to the file named by ``QUIV_TEST_TICKS``
(``O_APPEND``: lines from several processes never interleave), and writes
a byte to the FIFO named by ``QUIV_TEST_WAKE``, which the test waits on. Once its
scheduler has started, a worker appends its pid to ``QUIV_TEST_WORKERS``.

``QUIV_TEST_DAILY``, if set, names a file: every worker then also declares
``daily``, a cron schedule at 03:00 UTC whose handler appends ``"<pid> <wall
time>"`` there. ``QUIV_TEST_WALL_OFFSET`` (seconds) moves the schedulers'
wall clock by that much (:class:`ShiftedClock`), so a test can deploy "at
02:59:54" and restart "the next day" in real seconds.

``QUIV_TEST_PLAIN=1`` leaves ``host_mode`` and ``key=`` out, the mistake host
mode exists for: the second worker's scheduler must refuse to start on the
file the first one holds.

Endpoints: ``GET /pid`` returns ``{"pid": ..., "is_runner": ...}``; ``POST
/long`` starts a run-once job that runs until cancelled; ``POST
/cancel/{job_id}`` and ``GET /job/{job_id}`` cancel and read a job, whichever
worker runs it.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quiv import AsyncQuiv

PLAIN = os.environ.get("QUIV_TEST_PLAIN") == "1"


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one write: one whole line
    finally:
        os.close(fd)
    _wake()


def _wake() -> None:
    """Tell the test a line was written: a byte into its FIFO (``QUIV_TEST_WAKE``)."""
    path = os.environ.get("QUIV_TEST_WAKE")
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # the test is gone (no reader)
        return
    try:
        os.write(fd, b".")
    except OSError:  # full: the test has bytes to read already
        pass
    finally:
        os.close(fd)


def tick() -> None:
    _append(os.environ["QUIV_TEST_TICKS"], f"{os.getpid()} {time.time():.6f}\n")


class ShiftedClock:
    """The real clock, its wall time moved by a fixed offset: a ``quiv.abc.Clock``."""

    lead = 0.0
    real_time = True

    def __init__(self, offset: float) -> None:
        self._offset = offset

    def now(self) -> float:
        return time.monotonic()

    def wall_time(self) -> float:
        return time.time() + self._offset

    async def sleep_until(self, deadline: float) -> None:
        if math.isinf(deadline):
            await anyio.sleep_forever()
        await anyio.sleep(max(0.0, deadline - time.monotonic()))


def daily() -> None:
    wall = time.time() if CLOCK is None else CLOCK.wall_time()
    _append(os.environ["QUIV_TEST_DAILY"], f"{os.getpid()} {wall:.6f}\n")


CLOCK = (
    ShiftedClock(float(os.environ["QUIV_TEST_WALL_OFFSET"]))
    if "QUIV_TEST_WALL_OFFSET" in os.environ
    else None
)


def _scheduler() -> AsyncQuiv:
    db_path = os.environ["QUIV_TEST_DB"]
    if PLAIN:
        return AsyncQuiv(db_path=db_path, timezone="UTC")
    return AsyncQuiv(db_path=db_path, timezone="UTC", host_mode=True, clock=CLOCK)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with _scheduler() as scheduler:
        if PLAIN:
            await scheduler.add_task("tick", tick, interval=1.0)
        else:
            await scheduler.add_task("tick", tick, interval=1.0, key="tick")
            if "QUIV_TEST_DAILY" in os.environ:
                await scheduler.add_task("daily", daily, cron="0 3 * * *", key="daily")
        app.state.scheduler = scheduler
        _append(os.environ["QUIV_TEST_WORKERS"], f"{os.getpid()}\n")
        yield


async def pid(request: Request) -> JSONResponse:
    scheduler: Any = request.app.state.scheduler
    return JSONResponse({"pid": os.getpid(), "is_runner": scheduler.is_runner})


def long_job(_stop_event: threading.Event) -> None:
    _stop_event.wait(60)


async def start_long(request: Request) -> JSONResponse:
    """Start a job that runs until cancelled; its record is committed when this returns."""
    scheduler: Any = request.app.state.scheduler
    task_id = await scheduler.add_task("long", long_job, run_once=True)
    job_id = (await scheduler.get_task(task_id)).next_job_id
    await scheduler.get_job(job_id)  # a read commits what the store holds
    return JSONResponse({"pid": os.getpid(), "job_id": job_id})


async def cancel(request: Request) -> JSONResponse:
    scheduler: Any = request.app.state.scheduler
    cancelled = scheduler.cancel_job(request.path_params["job_id"])
    return JSONResponse({"pid": os.getpid(), "cancelled": cancelled})


async def job(request: Request) -> JSONResponse:
    scheduler: Any = request.app.state.scheduler
    record = await scheduler.get_job(request.path_params["job_id"])
    return JSONResponse({"pid": os.getpid(), "status": record.status.value})


app = Starlette(
    routes=[
        Route("/pid", pid),
        Route("/long", start_long, methods=["POST"]),
        Route("/cancel/{job_id}", cancel, methods=["POST"]),
        Route("/job/{job_id}", job),
    ],
    lifespan=lifespan,
)
