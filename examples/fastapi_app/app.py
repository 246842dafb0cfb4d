"""The FastAPI app, with the sync face: ``scheduler = Quiv(...)``, as in the README.

``scheduler.start()`` runs in the lifespan, on the server's event loop, so that
loop is quiv's *main loop*: the progress callback and the listeners run there,
next to the websockets they write to. The endpoints are plain ``def``
functions; FastAPI runs them in its threadpool, and ``Quiv`` methods may be
called from any thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.responses import HTMLResponse

from quiv import Quiv, TaskNotFoundError

from .page import PAGE
from .work import (
    JOB_EVENTS,
    DownloadRequest,
    HeartbeatRequest,
    ReportRequest,
    build_report,
    download,
    heartbeat,
    hub,
    job_json,
    on_job_event,
    on_progress,
)


def create_app() -> FastAPI:
    """Build the app and its scheduler (a ``Quiv`` runs once, so one per app)."""
    scheduler = Quiv(timezone="UTC")
    for event in JOB_EVENTS:
        scheduler.add_listener(event, on_job_event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()  # the server's loop becomes the main loop for callbacks
        yield
        scheduler.shutdown(timeout=5)  # running jobs get 5 s to see their stop event

    app = FastAPI(title="quiv example", lifespan=lifespan)
    app.state.scheduler = scheduler

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.post("/heartbeat")
    def start_heartbeat(body: HeartbeatRequest) -> dict[str, str]:
        task_id = scheduler.add_task(
            task_name="heartbeat",
            func=heartbeat,
            interval=body.interval,
            args=(body.beats, body.beat_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/downloads")
    def start_download(body: DownloadRequest) -> dict[str, str]:
        task_id = scheduler.add_task(
            task_name=f"download {body.media_id}",
            func=download,
            run_once=True,
            args=(body.media_id, body.chunks, body.chunk_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/reports")
    def start_report(body: ReportRequest) -> dict[str, str]:
        task_id = scheduler.add_task(
            task_name="report",
            func=build_report,
            run_once=True,
            args=(body.pages, body.page_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, bool]:
        return {"cancelled": scheduler.cancel_job(job_id)}

    @app.get("/jobs")
    def list_jobs(limit: int = 50) -> list[dict[str, Any]]:
        return [job_json(job) for job in scheduler.get_all_jobs(limit=limit)]

    @app.get("/tasks")
    def list_tasks() -> list[dict[str, Any]]:
        return [
            {"id": t.id, "task_name": t.task_name, "status": t.status.value}
            for t in scheduler.get_all_tasks(include_run_once=True)
        ]

    @app.delete("/tasks/{task_id}", status_code=204)
    def remove_task(task_id: str) -> None:
        try:
            scheduler.remove_task(task_id)
        except TaskNotFoundError:
            raise HTTPException(404, f"no task {task_id}") from None

    @app.websocket("/ws")
    async def progress_socket(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    return app
