"""The example's background work, shared by the asyncio app and the trio app.

Nothing here knows which face of the scheduler runs it: handlers receive what
they declare (``_job_id``, ``_stop_event``, ``_progress_hook``), nested code
reaches the server's loop with :func:`quiv.run_on_main`, and the callbacks
(:func:`on_progress`, :func:`on_job_event`) run on that loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from fastapi import Request, WebSocket
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from quiv import (
    Event,
    Job,
    JobLogFilter,
    Task,
    call_on_main_async,
    current_job,
    run_on_main,
)

logger = logging.getLogger("examples.work")

#: the events the page shows as status changes
JOB_EVENTS = (Event.JOB_STARTED, Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED)

#: the nightly report's schedule: 02:30 every day, in the scheduler's time zone
#: (the apps' ``--timezone``); cron schedules need the ``quiv[cron]`` extra
NIGHTLY_REPORT_CRON = "30 2 * * *"
#: a nightly report that comes due more than an hour late (the host slept) is skipped
NIGHTLY_REPORT_GRACE = 3600.0
#: how many upcoming runs the page shows for each schedule
PREVIEW_RUNS = 3


class ProgressHub:
    """The connected websockets. It lives on the server's loop, like the sockets.

    Messages are sent to each client in the order they are broadcast.
    """

    def __init__(self) -> None:
        self._clients: set[WebSocket] = set()

    async def serve(self, websocket: WebSocket) -> None:
        """Keep *websocket* subscribed until the client goes away."""
        await websocket.accept()
        self._clients.add(websocket)
        try:
            await websocket.send_json({"type": "hello"})
            while True:  # the page sends nothing; this notices the disconnect
                await websocket.receive_text()
        except Exception:  # WebSocketDisconnect, or the server shutting down
            pass
        finally:
            self._clients.discard(websocket)

    async def broadcast(self, message: dict[str, Any]) -> None:
        for websocket in list(self._clients):
            try:
                await websocket.send_json(message)
            except Exception:  # a client that went away
                self._clients.discard(websocket)

    def client_count(self) -> int:
        return len(self._clients)


hub = ProgressHub()


# -- callbacks: they run on the main loop (the server's) -------------------------------


async def on_progress(**payload: Any) -> None:
    """A task's ``progress_callback``: forward ``_progress_hook(**payload)`` to the page."""
    await hub.broadcast({"type": "progress", **payload})


async def on_job_event(event: Event, task: Task, job: Job) -> None:
    """A listener for :data:`JOB_EVENTS`: tell the page a job changed status."""
    await hub.broadcast({"type": "job", "event": event.value, "job": job_json(job)})


def job_json(job: Job) -> dict[str, Any]:
    data: dict[str, Any] = jsonable_encoder(job)
    return data


def task_json(task: Task, next_runs: list[datetime]) -> dict[str, Any]:
    """What the page shows of a task: its schedule in words and its next runs (aware UTC)."""
    return {
        "id": task.id,
        "task_name": task.task_name,
        "status": task.status.value,
        "run_once": task.run_once,
        "description": task.description,
        "timezone": task.timezone,
        "next_run_at": None if task.next_run_at is None else task.next_run_at.isoformat(),
        "next_runs": [run.isoformat() for run in next_runs],
        "skipped_runs": task.skipped_runs,
    }


# -- handlers: they run in worker threads (or a worker thread's own loop) ------------------


def heartbeat(
    beats: int,
    beat_seconds: float,
    _job_id: str,
    _stop_event: threading.Event,
    _progress_hook: Callable[..., None],
) -> None:
    """One run of the recurring heartbeat task: a few pings, reported as progress."""
    for beat in range(1, beats + 1):
        if _stop_event.wait(beat_seconds):
            return
        _progress_hook(job_id=_job_id, task="heartbeat", done=beat, total=beats)
    logger.info("heartbeat: %d pings sent", beats)


def download(
    media_id: int,
    chunks: int,
    chunk_seconds: float,
    _job_id: str,
    _stop_event: threading.Event,
    _progress_hook: Callable[..., None],
) -> None:
    """A long download-like job: chunk after chunk, until done or cancelled."""
    logger.info("download of media %s started: %d chunks", media_id, chunks)
    for done in range(1, chunks + 1):
        # Waiting on the stop event is the "work" here: a cancel ends it at once.
        if _stop_event.wait(chunk_seconds):
            logger.info("download of media %s cancelled after %d chunks", media_id, done - 1)
            return  # cooperative exit: the job is recorded as cancelled
        _progress_hook(job_id=_job_id, task="download", done=done, total=chunks)
        if done == (chunks + 1) // 2:
            announce_halfway(media_id)
    logger.info("download of media %s finished", media_id)


def announce_halfway(media_id: int) -> None:
    """Deep inside the job, no parameters threaded through: hop to the main loop."""
    job = current_job()
    job_id = job.job_id if job is not None else None
    run_on_main(
        hub.broadcast, {"type": "note", "job_id": job_id, "text": f"media {media_id}: halfway"}
    )


async def build_report(
    pages: int, page_seconds: float, _job_id: str, _progress_hook: Callable[..., None]
) -> dict[str, int]:
    """An async handler: it runs on a worker thread's own event loop, never the server's.

    What it returns is kept as the job's ``result`` (the page shows it).
    """
    readers = await call_on_main_async(hub.client_count)  # ask the main loop, without blocking
    logger.info("report started with %d page(s) watched by %d client(s)", pages, readers)
    for page in range(1, pages + 1):
        await anyio.sleep(page_seconds)  # cancelled right here if the job is cancelled
        _progress_hook(job_id=_job_id, task="report", done=page, total=pages)
    logger.info("report finished")
    return {"pages": pages, "watchers": readers}


def nightly_report() -> dict[str, Any]:
    """``add_task`` arguments of the nightly report, a cron task both apps add.

    It runs at 02:30 every day in the scheduler's time zone (the apps'
    ``--timezone``), and a run more than an hour late (the host slept) is skipped.
    """
    return {
        "task_name": "nightly report",
        "func": build_report,
        "cron": NIGHTLY_REPORT_CRON,
        "args": (10, 0.2),
        "progress_callback": on_progress,
        "misfire_grace": NIGHTLY_REPORT_GRACE,
    }


#: stamps ``%(job_id)s`` (the running job's id, or ``-``) on every record
JobIdFilter = JobLogFilter


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with the job id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s [%(job_id)s] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


# -- request bodies -------------------------------------------------------------------


class HeartbeatRequest(BaseModel):
    interval: float = Field(5.0, gt=0, description="seconds between runs")
    beats: int = Field(10, ge=1, le=10_000, description="pings per run")
    beat_seconds: float = Field(0.05, ge=0, le=60)


class DownloadRequest(BaseModel):
    media_id: int = 1
    chunks: int = Field(50, ge=1, le=100_000)
    chunk_seconds: float = Field(0.1, ge=0, le=60)


class ReportRequest(BaseModel):
    pages: int = Field(10, ge=1, le=10_000)
    page_seconds: float = Field(0.2, ge=0, le=60)


def local_only(request: Request) -> bool:
    """The dashboard's ``auth``: let in requests from this machine only.

    The example serves on 127.0.0.1; a real app checks its own users here
    (a session, a header set by its proxy, ...).
    """
    return request.client is not None and request.client.host in ("127.0.0.1", "::1")
