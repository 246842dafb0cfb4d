"""The dashboard's Starlette app: the page, its files, the JSON reads, the stream, the actions.

Every path is relative to the mount point, so the app works under any
prefix without being told it. Reads are GETs; every action is a POST
(behind the guard's CSRF check and read-only refusal, see :mod:`._guard`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import (
    ConfigurationError,
    JobNotFoundError,
    QuivError,
    SchedulerStoppedError,
    TaskNotActiveError,
    TaskNotFoundError,
)
from .._models import JobStatus
from ._guard import CSRF_COOKIE, Auth, Guard, csrf_token
from ._live import Hub
from ._records import job_json, stats_json, task_json
from ._source import Source
from ._stream import event_stream

__all__ = ("build_app",)

#: the files the page loads, with their types
_STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGE_SIZES = (10, 25, 50, 100, 200)
MAX_OFFSET = 1_000_000
_NO_STORE = {"cache-control": "no-store"}


def _read(name: str) -> str:
    return (files(__package__) / "static" / name).read_text(encoding="utf-8")


def _json(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=_NO_STORE)


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, (TaskNotFoundError, JobNotFoundError)):
        status = 404
    elif isinstance(exc, TaskNotActiveError):
        status = 409
    elif isinstance(exc, SchedulerStoppedError):
        status = 503
    elif isinstance(exc, ConfigurationError):
        status = 400
    else:
        status = 500
    return _json({"error": str(exc)}, status)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError.bad_value(name, raw, "a whole number") from None
    if not low <= value <= high:
        raise ConfigurationError.bad_value(name, value, f"between {low} and {high}")
    return value


def _job_filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    status_text = params.get("status", "")
    try:
        status = JobStatus(status_text) if status_text else None
    except ValueError:
        raise ConfigurationError.bad_value("status", status_text, "a job status") from None
    since = None
    window = params.get("window", "")
    if window:
        try:
            seconds = float(window)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ConfigurationError.bad_value("window", window, "a number of seconds > 0")
        since = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    limit = _int(request, "limit", 50, 1, max(PAGE_SIZES))
    return {
        "status": status,
        "task_id": params.get("task_id") or None,
        "since": since,
        "limit": limit,
        "offset": _int(request, "offset", 0, 0, MAX_OFFSET),
    }


class _Endpoints:
    """The route handlers of one dashboard."""

    def __init__(self, source: Source, hub: Hub, read_only: bool) -> None:
        self.source = source
        self.hub = hub
        self.read_only = read_only
        self.page = _read("index.html")

    async def index(self, request: Request) -> Response:
        token = csrf_token(request)
        html = self.page.replace("{{csrf_token}}", token).replace(
            "{{read_only}}", "true" if self.read_only else "false"
        )
        response = Response(html, media_type="text/html; charset=utf-8", headers=_NO_STORE)
        root = request.scope.get("root_path", "").rstrip("/") or "/"
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=root,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return _json({"error": "not found"}, 404)
        return Response(
            _read(name), media_type=_STATIC[name], headers={"cache-control": "no-cache"}
        )

    async def tasks(self, request: Request) -> Response:
        try:
            tasks = await self.source.tasks()
        except QuivError as exc:
            return _error(exc)
        return _json({"tasks": [task_json(task) for task in tasks]})

    async def jobs(self, request: Request) -> Response:
        try:
            filters = _job_filters(request)
            limit = filters["limit"]
            jobs = await self.source.jobs(**{**filters, "limit": limit + 1})
        except QuivError as exc:
            return _error(exc)
        return _json(
            {
                "jobs": [job_json(job) for job in jobs[:limit]],
                "has_more": len(jobs) > limit,
                "offset": filters["offset"],
                "limit": limit,
            }
        )

    async def job(self, request: Request) -> Response:
        try:
            job = await self.source.job(request.path_params["job_id"])
        except QuivError as exc:
            return _error(exc)
        return _json({"job": job_json(job, detail=True)})

    async def stats(self, request: Request) -> Response:
        try:
            stats = await self.source.stats()
        except QuivError as exc:
            return _error(exc)
        return _json({"stats": stats_json(stats), "read_only": self.read_only})

    async def events(self, request: Request) -> Response:
        mailbox = self.hub.open()
        return StreamingResponse(
            event_stream(self.hub, mailbox, self.source),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def cancel(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            cancelled = await self.source.cancel(job_id)
        except QuivError as exc:
            return _error(exc)
        if not cancelled:
            return _json({"error": f"job {job_id} is not in flight"}, 409)
        return _json({"ok": True, "job_id": job_id})

    def task_action(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint of one task action: ``run``, ``pause``, ``resume`` or ``remove``."""

        async def endpoint(request: Request) -> Response:
            return await self._act(action, request.path_params["task_id"])

        return endpoint

    async def _act(self, action: str, task_id: str) -> Response:
        try:
            await self.source.act(action, task_id)
        except QuivError as exc:
            return _error(exc)
        return _json({"ok": True, "task_id": task_id, "action": action})


def build_app(scheduler: object, auth: Auth | None, read_only: bool) -> Starlette:
    """The dashboard of *scheduler* (arguments already checked)."""
    source = Source(scheduler)
    hub = Hub(lambda events, callback, on: source.listen(events, callback, on=on))
    ep = _Endpoints(source, hub, read_only)
    routes = [
        Route("/", ep.index, methods=["GET"]),
        Route("/static/{name}", ep.static, methods=["GET"]),
        Route("/api/tasks", ep.tasks, methods=["GET"]),
        Route("/api/jobs", ep.jobs, methods=["GET"]),
        Route("/api/jobs/{job_id}", ep.job, methods=["GET"]),
        Route("/api/stats", ep.stats, methods=["GET"]),
        Route("/events", ep.events, methods=["GET"]),
        Route("/jobs/{job_id}/cancel", ep.cancel, methods=["POST"]),
        *(
            Route(f"/tasks/{{task_id}}/{action}", ep.task_action(action), methods=["POST"])
            for action in ("run", "pause", "resume", "remove")
        ),
    ]
    middleware = [Middleware(Guard, auth=auth, read_only=read_only)]
    return Starlette(routes=routes, middleware=middleware)
