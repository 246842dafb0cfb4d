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
from quiv.dashboard import dashboard

from .page import PAGE
from .work import (
    JOB_EVENTS,
    PREVIEW_RUNS,
    DownloadRequest,
    HeartbeatRequest,
    ReportRequest,
    build_report,
    download,
    heartbeat,
    hub,
    job_json,
    local_only,
    nightly_report,
    on_job_event,
    on_progress,
    task_json,
)


def create_app(timezone: str = "UTC") -> FastAPI:
    """Build the app and its scheduler (a ``Quiv`` runs once, so one per app).

    :param timezone: the scheduler's time zone, which the nightly report's
        cron expression is read in
    """
    scheduler = Quiv(timezone=timezone)
    for event in JOB_EVENTS:
        scheduler.add_listener(event, on_job_event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()  # the server's loop becomes the main loop for callbacks
        scheduler.add_task(**nightly_report())  # a cron task, in the app's zone
        yield
        scheduler.shutdown(timeout=5)  # running jobs get 5 s to see their stop event

    app = FastAPI(title="quiv example", lifespan=lifespan)
    # the dashboard: tasks, jobs, live progress, actions (quiv[dashboard])
    app.mount("/quiv", dashboard(scheduler, auth=local_only))
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
        listed = []
        for task in scheduler.get_all_tasks(include_run_once=True):
            try:
                next_runs = scheduler.preview(task.id, PREVIEW_RUNS)
            except TaskNotFoundError:  # a run-once task that finished meanwhile
                continue
            listed.append(task_json(task, next_runs))
        return listed

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
