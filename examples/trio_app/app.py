"""The same app with the async face: an ``AsyncQuiv`` in the lifespan, served under trio.

Nothing in it is specific to trio: it runs on whatever loop the server runs,
and hypercorn's trio worker (``--worker-class trio``) runs trio. The endpoints
are ``async def`` and ``await`` the scheduler, which lives on the server's loop
for as long as the app runs (:func:`quiv.integrations.starlette.lifespan`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.responses import HTMLResponse

from quiv import AsyncQuiv, TaskNotFoundError
from quiv.dashboard import dashboard
from quiv.integrations.starlette import lifespan

from ..fastapi_app.page import PAGE
from ..fastapi_app.work import (
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
    """Build the app and its scheduler (an ``AsyncQuiv`` runs once, so one per app).

    :param timezone: the scheduler's time zone, which the nightly report's
        cron expression is read in
    """
    scheduler = AsyncQuiv(timezone=timezone)
    for event in JOB_EVENTS:
        scheduler.add_listener(event, on_job_event)
    run_scheduler = lifespan(scheduler, shutdown_timeout=5)

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_scheduler(app):  # the scheduler runs while the app does
            await scheduler.add_task(**nightly_report())  # a cron task, in the app's zone
            yield

    app = FastAPI(title="quiv example (trio)", lifespan=app_lifespan)
    # the dashboard: tasks, jobs, live progress, actions (quiv[dashboard])
    app.mount("/quiv", dashboard(scheduler, auth=local_only))

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/heartbeat")
    async def start_heartbeat(body: HeartbeatRequest) -> dict[str, str]:
        task_id = await scheduler.add_task(
            task_name="heartbeat",
            func=heartbeat,
            interval=body.interval,
            args=(body.beats, body.beat_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/downloads")
    async def start_download(body: DownloadRequest) -> dict[str, str]:
        task_id = await scheduler.add_task(
            task_name=f"download {body.media_id}",
            func=download,
            run_once=True,
            args=(body.media_id, body.chunks, body.chunk_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/reports")
    async def start_report(body: ReportRequest) -> dict[str, str]:
        task_id = await scheduler.add_task(
            task_name="report",
            func=build_report,
            run_once=True,
            args=(body.pages, body.page_seconds),
            progress_callback=on_progress,
        )
        return {"task_id": task_id}

    @app.post("/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict[str, bool]:
        return {"cancelled": scheduler.cancel_job(job_id)}

    @app.get("/jobs")
    async def list_jobs(limit: int = 50) -> list[dict[str, Any]]:
        return [job_json(job) for job in await scheduler.get_all_jobs(limit=limit)]

    @app.get("/tasks")
    async def list_tasks() -> list[dict[str, Any]]:
        listed = []
        for task in await scheduler.get_all_tasks(include_run_once=True):
            try:
                next_runs = await scheduler.preview(task.id, PREVIEW_RUNS)
            except TaskNotFoundError:  # a run-once task that finished meanwhile
                continue
            listed.append(task_json(task, next_runs))
        return listed

    @app.delete("/tasks/{task_id}", status_code=204)
    async def remove_task(task_id: str) -> None:
        try:
            await scheduler.remove_task(task_id)
        except TaskNotFoundError:
            raise HTTPException(404, f"no task {task_id}") from None

    @app.websocket("/ws")
    async def progress_socket(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    return app
