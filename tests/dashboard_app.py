"""An app for the browser tests of quiv.dashboard, served as a subprocess.

``QUIV_TEST_FACE`` picks the scheduler: ``async`` (AsyncQuiv, default) or
``sync`` (Quiv). Mounts three dashboards of the same scheduler: ``/quiv``
(everyone allowed), ``/ro`` (read-only) and ``/locked`` (no ``auth``: nobody
allowed). ``/control/...`` lets the test start a job that reports progress a
step at a time, one step per ``POST /control/step``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from quiv import AsyncQuiv, Quiv
from quiv.dashboard import allow_all, dashboard
from quiv.integrations.starlette import lifespan

STEPS = 5
scheduler: AsyncQuiv | Quiv = AsyncQuiv() if os.environ.get("QUIV_TEST_FACE") != "sync" else Quiv()
steps = threading.Semaphore(0)


def crunch(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> str:
    """Report ``done`` 0..STEPS, waiting for one ``/control/step`` between reports."""
    for done in range(STEPS + 1):
        _progress_hook(done=done, total=STEPS)
        while not steps.acquire(timeout=0.05):
            if _stop_event.is_set():
                return "stopped"
    return "crunched"


async def call(name: str, *args: Any, **kwargs: Any) -> Any:
    method = getattr(scheduler, name)
    if isinstance(scheduler, AsyncQuiv):
        return await method(*args, **kwargs)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(lambda: method(*args, **kwargs))


async def start(request: Request) -> JSONResponse:
    task_id = await call("add_task", "crunch", crunch, interval=3600)
    return JSONResponse({"task_id": task_id})


async def step(request: Request) -> JSONResponse:
    steps.release()
    return JSONResponse({"ok": True})


async def add_named(request: Request) -> JSONResponse:
    name = (await request.json())["name"]
    task_id = await call("add_task", name, lambda: name, interval=3600, delay=3600)
    return JSONResponse({"task_id": task_id})


def send_report() -> dict[str, int]:
    return {"sent": 42}


def import_orders() -> None:
    raise ValueError("orders.csv line 7: no such customer 'ACME <script>'")


async def samples(request: Request) -> JSONResponse:
    """A completed and a failed job, for the screenshot."""
    for name, func in (("send-report", send_report), ("import-orders", import_orders)):
        await call("wait_for_task", await call("add_task", name, func, run_once=True), 10)
    return JSONResponse({"ok": True})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"running": scheduler.is_running})


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/control/start", start, methods=["POST"]),
        Route("/control/step", step, methods=["POST"]),
        Route("/control/add", add_named, methods=["POST"]),
        Route("/control/samples", samples, methods=["POST"]),
        Mount("/quiv", dashboard(scheduler, auth=allow_all)),
        Mount("/ro", dashboard(scheduler, auth=allow_all, read_only=True)),
        Mount("/locked", dashboard(scheduler, auth=None)),
    ],
    lifespan=lifespan(scheduler, shutdown_timeout=2),
)
