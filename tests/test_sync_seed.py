"""Every example of the seed README, run exactly as written.

The examples are copied verbatim from the README this project was built from
(the ``seed``); each test defines the names an example leaves to the reader
(``scheduler``, ``stream_chunks``, ``websocket_manager``, ...) and runs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import sniffio
from sync_helpers import WAIT, JobEnds, no_leftovers

from quiv import Event, JobStatus, Quiv, current_job

QUICK = """\
from contextlib import asynccontextmanager

from fastapi import FastAPI

from quiv import Quiv

# Create the Quiv scheduler
scheduler = Quiv(timezone="UTC")

# Wire it up in FastAPI's lifespan so that it starts and dies with your app
@asynccontextmanager
async def lifespan(app: FastAPI):
    # Startup
    scheduler.start()
    yield
    # Shutdown
    scheduler.shutdown()

# Create FastAPI app
app = FastAPI(lifespan=lifespan)

# Create a test function that we can later schedule to broadcast progress
# sync/async - doesn't matter; quiv handles them all
def ping(_progress_hook=None):
    for i in range(30):
        # do some work
        if _progress_hook:
            _progress_hook(message="ping", progress=i, total=30)

# Now the actual progress callback function that we want to run on the main asyncio loop
async def on_progress(**payload):
    # Replace with websocket broadcast, logging, metrics, etc.
    print("progress", payload)

# Create the endpoint function that will schedule the task when triggered
@app.post("/start-heartbeat")
def start_heartbeat():
    task_id = scheduler.add_task(
        task_name="heartbeat",
        func=ping,
        interval=30,
        progress_callback=on_progress,
    )
    return {"task_id": task_id}
"""

ASYNC_HANDLER = """\
async def fetch_updates(_stop_event=None):
    await some_async_api_call()

scheduler.add_task(task_name="fetch", func=fetch_updates, interval=60)
"""

CANCEL = """\
def download(media_id: int, _stop_event=None):
    for chunk in stream_chunks(media_id):
        if _stop_event and _stop_event.is_set():
            return  # cooperative exit
        write(chunk)
"""

PROGRESS = """\
async def on_progress(**payload):
    await websocket_manager.broadcast(payload)  # runs on the main loop

scheduler.add_task(
    task_name="download",
    func=download,
    progress_callback=on_progress,
    run_once=True,
)
"""

RUN_ON_MAIN = """\
from quiv import run_on_main

async def broadcast(payload: dict):
    await ws_manager.broadcast(payload)  # lives on uvicorn's loop

def deeply_nested_step():
    # Inside a Quiv task — but the broadcast hops to the main loop.
    run_on_main(broadcast, {"event": "step_done"})
"""

LOGGING = """\
import logging

base_logger = logging.getLogger(__name__)

def download_trailer(media_id: int, _job_id: str | None = None, _stop_event=None):
    logger = logging.LoggerAdapter(base_logger, {"trace_id": _job_id})
    logger.info("Starting download for media %s", media_id)
    # every log line through `logger` below carries trace_id=<_job_id>
"""


def run_seed(code: str, **names: Any) -> dict[str, Any]:
    """Run a seed example exactly as written, with *names* defined around it."""
    namespace: dict[str, Any] = {"__name__": "seed_example", **names}
    exec(compile(code, "<seed example>", "exec"), namespace)
    return namespace


# -- Quick example: the FastAPI app ---------------------------------------------------


async def test_quick_example_fastapi_app(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    import httpx

    completed = anyio.Event()
    with no_leftovers():
        seed = run_seed(QUICK)
        app, scheduler = seed["app"], seed["scheduler"]
        # What the server does: run the lifespan on its loop (this test's loop,
        # asyncio or trio), then serve requests; sync endpoints run in worker threads.
        async with app.router.lifespan_context(app):
            scheduler.add_listener(Event.JOB_COMPLETED, lambda *_: completed.set())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://seed") as client:
                response = await client.post("/start-heartbeat")
            assert response.status_code == 200
            task_id = response.json()["task_id"]
            with anyio.fail_after(WAIT):
                await completed.wait()  # listeners run after the job's progress callbacks
            assert scheduler.get_task(task_id).interval_seconds == 30
        assert not scheduler.is_running  # the lifespan shut it down
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("progress")]
    assert lines == [
        f"progress {{'message': 'ping', 'progress': {i}, 'total': 30}}" for i in range(30)
    ]


# -- the feature sections, each with a running scheduler ---------------------------------


def test_async_handlers_run_natively() -> None:
    loops: list[str] = []

    async def some_async_api_call() -> None:
        await anyio.lowlevel.checkpoint()
        loops.append(sniffio.current_async_library())

    with no_leftovers(), Quiv() as scheduler:
        ends = JobEnds(scheduler)
        run_seed(ASYNC_HANDLER, scheduler=scheduler, some_async_api_call=some_async_api_call)
        (task,) = scheduler.get_all_tasks(task_name="fetch")
        assert ends.wait(task.id).status is JobStatus.COMPLETED
        assert task.interval_seconds == 60
    assert loops == ["asyncio"]


def test_cancel_a_running_task() -> None:
    written: list[int] = []
    writing = threading.Event()

    def stream_chunks(media_id: int) -> Iterator[int]:
        yield from range(media_id, media_id + 1000)

    def write(chunk: int) -> None:
        written.append(chunk)
        if len(written) == 3:
            writing.set()
            job = current_job()
            assert job is not None
            job.stop_event.wait(WAIT)  # a slow write; the cancel ends it

    with no_leftovers(), Quiv() as scheduler:
        seed = run_seed(CANCEL, stream_chunks=stream_chunks, write=write)
        ends = JobEnds(scheduler)
        task_id = scheduler.add_task("download", seed["download"], run_once=True, args=(7,))
        assert writing.wait(WAIT)
        (job,) = scheduler.get_all_jobs(task_id=task_id)
        assert scheduler.cancel_job(job.id)  # what the HTTP endpoint calls
        assert ends.wait(task_id).status is JobStatus.CANCELLED
    assert written == [7, 8, 9]  # the handler stopped at its next breakpoint


async def test_stream_progress_to_a_websocket() -> None:
    here = threading.get_ident()
    received: list[dict[str, Any]] = []
    done = anyio.Event()

    class WebsocketManager:
        async def broadcast(self, payload: dict[str, Any]) -> None:
            assert threading.get_ident() == here  # on the main loop
            received.append(payload)
            if payload["done"] == 10:
                done.set()

    def download(_progress_hook: Callable[..., None] | None = None) -> None:
        for done_chunks in range(1, 11):
            if _progress_hook:
                _progress_hook(done=done_chunks, total=10)

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()  # this test's loop is the main loop
        try:
            run_seed(
                PROGRESS,
                scheduler=scheduler,
                download=download,
                websocket_manager=WebsocketManager(),
            )
            with anyio.fail_after(WAIT):
                await done.wait()
        finally:
            scheduler.shutdown()
    assert received == [{"done": i, "total": 10} for i in range(1, 11)]


async def test_dispatch_to_the_main_loop_from_anywhere() -> None:
    here = threading.get_ident()
    received: list[tuple[dict[str, Any], int]] = []
    arrivals = [anyio.Event(), anyio.Event()]

    class WsManager:
        async def broadcast(self, payload: dict[str, Any]) -> None:
            received.append((payload, threading.get_ident()))
            arrivals[len(received) - 1].set()

    with no_leftovers():
        scheduler = Quiv()
        scheduler.start()
        try:
            seed = run_seed(RUN_ON_MAIN, ws_manager=WsManager())
            # inside a Quiv task, on a worker thread
            scheduler.add_task("nested", seed["deeply_nested_step"], run_once=True)
            with anyio.fail_after(WAIT):
                await arrivals[0].wait()
            # and from main-loop code, like a route handler
            seed["deeply_nested_step"]()
            with anyio.fail_after(WAIT):
                await arrivals[1].wait()
        finally:
            scheduler.shutdown()
    assert received == [({"event": "step_done"}, here)] * 2


def test_correlate_logs_for_one_job(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seed_example")
    with no_leftovers(), Quiv() as scheduler:
        seed = run_seed(LOGGING)
        ends = JobEnds(scheduler)
        task_id = scheduler.add_task("trailer", seed["download_trailer"], run_once=True, args=(42,))
        job = ends.wait(task_id)
    assert job.status is JobStatus.COMPLETED
    (record,) = [r for r in caplog.records if r.name == "seed_example"]
    assert record.getMessage() == "Starting download for media 42"
    assert record.__dict__["trace_id"] == job.id
