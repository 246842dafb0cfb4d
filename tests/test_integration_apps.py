"""The example apps, served for real on 127.0.0.1 and driven over HTTP and a websocket.

Each combination runs the same scenarios:

- ``quiv-uvicorn``: examples.fastapi_app (``Quiv``, sync endpoints) under uvicorn, asyncio;
- ``asyncquiv-hypercorn-trio``: examples.trio_app (``AsyncQuiv`` in the lifespan) under
  hypercorn's trio worker;
- ``quiv-hypercorn-trio``: examples.fastapi_app under trio, so the sync face's main
  loop is a trio server's loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx_ws")

import httpx
from app_helpers import (
    hypercorn_trio_server,
    job_event,
    of_type,
    progress_of,
    receive_until,
    uvicorn_server,
)
from httpx_ws import aconnect_ws
from sync_helpers import no_leftovers

from examples.fastapi_app import create_app as create_quiv_app
from examples.fastapi_app.work import JobIdFilter

pytestmark = pytest.mark.integration

SERVERS: dict[str, tuple[str, Any, Any]] = {
    "quiv-uvicorn": ("asyncio", create_quiv_app, uvicorn_server),
    "asyncquiv-hypercorn-trio": ("trio", "examples.trio_app", hypercorn_trio_server),
    "quiv-hypercorn-trio": ("trio", create_quiv_app, hypercorn_trio_server),
}


@pytest.fixture(params=sorted(SERVERS))
def server_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if SERVERS[kind][0] == "trio":
        pytest.importorskip("trio")
        pytest.importorskip("hypercorn")
    else:
        pytest.importorskip("uvicorn")
    return kind


@pytest.fixture
def anyio_backend(server_kind: str) -> str:
    """The backend is the server's: uvicorn runs asyncio, hypercorn's trio worker trio."""
    return SERVERS[server_kind][0]


@contextlib.asynccontextmanager
async def site(kind: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Any]]:
    """Serve a fresh app; yield an HTTP client, a subscribed websocket and the app.

    Leaving checks that the app's scheduler stopped and left nothing behind.
    """
    _, factory, server = SERVERS[kind]
    if isinstance(factory, str):
        factory = __import__(factory, fromlist=["create_app"]).create_app
    app = factory()
    with no_leftovers():
        async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
            async with aconnect_ws("/ws", client) as websocket:
                # the hub registered this client before saying hello
                assert await websocket.receive_json() == {"type": "hello"}
                yield client, websocket, app
        assert not app.state.scheduler.is_running


async def test_page_and_job_list(server_kind: str) -> None:
    async with site(server_kind) as (client, _, _):
        page = await client.get("/")
        assert page.status_code == 200
        assert "<title>quiv example</title>" in page.text
        assert (await client.get("/jobs")).json() == []


async def test_nightly_report_is_listed_with_its_schedule(server_kind: str) -> None:
    async with site(server_kind) as (client, _, _):
        before = datetime.now(timezone.utc)
        (nightly,) = (await client.get("/tasks")).json()
        assert nightly["task_name"] == "nightly report"
        assert nightly["description"] == "At 02:30 every day (UTC)"
        assert (nightly["timezone"], nightly["status"], nightly["run_once"]) == (
            "UTC",
            "active",
            False,
        )
        runs = [datetime.fromisoformat(run) for run in nightly["next_runs"]]
        assert nightly["next_run_at"] == nightly["next_runs"][0]
        assert len(runs) == 3
        assert all(
            (run.hour, run.minute, run.second, run.microsecond) == (2, 30, 0, 0) for run in runs
        )
        assert all(run.utcoffset() == timedelta(0) for run in runs)
        assert before < runs[0] <= before + timedelta(days=1)
        assert [runs[1] - runs[0], runs[2] - runs[1]] == [timedelta(days=1)] * 2


class Collect(logging.Handler):
    """Keeps the records it sees; the app's filter stamps them with job ids first."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(JobIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_download_progress_arrives_in_order(
    server_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="examples.work")
    collect = Collect()
    logging.getLogger("examples.work").addHandler(collect)
    try:
        async with site(server_kind) as (client, websocket, _):
            response = await client.post(
                "/downloads", json={"media_id": 7, "chunks": 40, "chunk_seconds": 0}
            )
            task_id = response.json()["task_id"]
            messages = await receive_until(
                websocket,
                job_event(task_id, "job_completed"),
                of_type("note", text="media 7: halfway"),  # run_on_main from nested code
            )
            job = next(m["job"] for m in messages if job_event(task_id, "job_completed")(m))
            assert progress_of(messages, job["id"]) == list(range(1, 41))
            listed = {j["id"]: j["status"] for j in (await client.get("/jobs")).json()}
            assert listed == {job["id"]: "completed"}
    finally:
        logging.getLogger("examples.work").removeHandler(collect)
    # the job's log lines carry its id
    assert [r.getMessage() for r in collect.records] == [
        "download of media 7 started: 40 chunks",
        "download of media 7 finished",
    ]
    assert {r.__dict__["job_id"] for r in collect.records} == {job["id"]}


async def test_cancel_a_running_download(server_kind: str) -> None:
    async with site(server_kind) as (client, websocket, _):
        response = await client.post(
            "/downloads", json={"media_id": 3, "chunks": 100_000, "chunk_seconds": 0.001}
        )
        task_id = response.json()["task_id"]
        (*_, first) = await receive_until(websocket, of_type("progress", task="download"))
        job_id = first["job_id"]
        cancelled = await client.post(f"/jobs/{job_id}/cancel")
        assert cancelled.json() == {"cancelled": True}
        messages = await receive_until(websocket, job_event(task_id, "job_cancelled"))
        done = progress_of([first, *messages], job_id)
        assert done == list(range(1, len(done) + 1))  # in order, none lost
        assert done[-1] < 100_000
        (job,) = (await client.get("/jobs")).json()
        assert (job["id"], job["status"]) == (job_id, "cancelled")
        assert "cancel_job" in job["error_message"]
        again = await client.post(f"/jobs/{job_id}/cancel")
        assert again.json() == {"cancelled": False}


async def test_heartbeat_interval_task_and_async_report(server_kind: str) -> None:
    async with site(server_kind) as (client, websocket, _):
        heartbeat = (
            await client.post("/heartbeat", json={"interval": 3600, "beats": 3, "beat_seconds": 0})
        ).json()["task_id"]
        report = (await client.post("/reports", json={"pages": 3, "page_seconds": 0})).json()[
            "task_id"
        ]
        messages = await receive_until(
            websocket, job_event(heartbeat, "job_completed"), job_event(report, "job_completed")
        )
        ended = {}
        for task_id in (heartbeat, report):
            job = ended[task_id] = next(
                m["job"] for m in messages if job_event(task_id, "job_completed")(m)
            )
            assert progress_of(messages, job["id"]) == [1, 2, 3]
        # the async report's return value is its job's result; the heartbeat returns None
        assert ended[report]["result"] == {"pages": 3, "watchers": 1}
        assert ended[heartbeat]["result"] is None
        tasks = {t["task_name"]: t["status"] for t in (await client.get("/tasks")).json()}
        assert tasks == {"heartbeat": "active", "nightly report": "active"}  # the report is gone
        assert (await client.delete(f"/tasks/{heartbeat}")).status_code == 204
        assert [t["task_name"] for t in (await client.get("/tasks")).json()] == ["nightly report"]
        assert (await client.delete(f"/tasks/{heartbeat}")).status_code == 404
        jobs = (await client.get("/jobs")).json()
        assert sorted(j["status"] for j in jobs) == ["completed", "completed"]
        assert {j["task_id"]: j["result"] for j in jobs}[report] == {"pages": 3, "watchers": 1}


async def test_server_shutdown_cancels_running_jobs(server_kind: str) -> None:
    async with site(server_kind) as (client, websocket, app):
        await client.post("/downloads", json={"chunks": 100_000, "chunk_seconds": 0.01})
        await receive_until(websocket, of_type("progress", task="download"))
        scheduler = app.state.scheduler
    # leaving the site stopped the server; its lifespan shut the scheduler down
    # within its timeout, and no thread or file is left (checked by site())
    assert not scheduler.is_running
