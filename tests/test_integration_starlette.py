"""quiv.integrations.starlette.lifespan: a scheduler that lives as long as the app."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

pytest.importorskip("starlette")

import httpx
import sniffio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from sync_helpers import WAIT, no_leftovers

from quiv import AsyncQuiv, ConfigurationError, Event, Quiv
from quiv.integrations.starlette import lifespan


def make_app(scheduler: AsyncQuiv | Quiv, **options: Any) -> Starlette:
    async def add(request: Request) -> JSONResponse:
        scheduler = request.app.state.jobs
        if isinstance(scheduler, AsyncQuiv):
            task_id = await scheduler.add_task("noop", lambda: None, run_once=True)
        else:
            task_id = scheduler.add_task("noop", lambda: None, run_once=True)
        return JSONResponse({"task_id": task_id})

    return Starlette(
        routes=[Route("/add", add, methods=["POST"])],
        lifespan=lifespan(scheduler, state_name="jobs", **options),
    )


@pytest.mark.parametrize("face", [AsyncQuiv, Quiv])
async def test_the_scheduler_runs_while_the_app_runs(face: type[AsyncQuiv] | type[Quiv]) -> None:
    scheduler = face()
    completed = anyio.Event()
    loops: list[str] = []

    def on_completed(*_: object) -> None:  # a listener: it runs on the server's loop
        loops.append(sniffio.current_async_library())
        completed.set()

    scheduler.add_listener(Event.JOB_COMPLETED, on_completed)
    app = make_app(scheduler, shutdown_timeout=1)
    with no_leftovers():
        async with app.router.lifespan_context(app):
            assert scheduler.is_running
            assert app.state.jobs is scheduler
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                response = await client.post("/add")
            assert response.status_code == 200
            with anyio.fail_after(WAIT):
                await completed.wait()
        assert not scheduler.is_running
    assert loops == [sniffio.current_async_library()]


def test_arguments_are_checked_at_once() -> None:
    with pytest.raises(ConfigurationError, match="scheduler"):
        lifespan(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="shutdown_timeout"):
        lifespan(AsyncQuiv(), shutdown_timeout=-1)
