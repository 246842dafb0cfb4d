"""quiv.testing.eager_mode: route tests where the work a request adds has ended on return."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from quiv import AsyncQuiv, ConfigurationError, JobStatus, Quiv
from quiv.testing import VirtualClock, eager_mode, run_until_idle

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi import FastAPI  # noqa: E402


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client to it (no server, no port)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def test_a_sync_route_on_the_sync_face(backend: str) -> None:
    scheduler = Quiv(backend=backend, db_path=":memory:", shutdown_timeout=5)
    built: list[tuple[int, str]] = []

    def build_report(report_id: int) -> None:
        time.sleep(0.2)  # real work: the request must wait for it
        built.append((report_id, threading.current_thread().name))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.post("/reports/{report_id}")
    def start_report(report_id: int) -> dict[str, str]:
        task_id = scheduler.add_task("report", build_report, run_once=True, args=(report_id,))
        return {"task_id": task_id}

    async with client_of(app) as client:
        with eager_mode(scheduler):
            task_id = (await client.post("/reports/7")).json()["task_id"]
        assert [report for report, _ in built] == [7]  # done before the response
        (job,) = await anyio.to_thread.run_sync(lambda: scheduler.get_all_jobs(task_id=task_id))
        assert job.status is JobStatus.COMPLETED
    assert built[0][1].startswith("quiv")  # on a worker thread, as in production
    assert "add_task" not in vars(scheduler)  # eager mode is off again


async def test_an_async_route_on_the_async_face() -> None:
    clock = VirtualClock()
    state: dict[str, AsyncQuiv] = {}
    sent: list[str] = []

    async def send_email(address: str) -> None:
        await anyio.sleep(0.2)  # real time, on the worker loop
        sent.append(address)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncQuiv(clock=clock, db_path=":memory:", shutdown_timeout=5) as s:
            state["scheduler"] = s
            with eager_mode(s):
                yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/signup/{address}")
    async def signup(address: str) -> dict[str, str]:
        scheduler = state["scheduler"]
        await scheduler.add_task("welcome", send_email, run_once=True, args=(address,))
        await scheduler.add_task("reminder", send_email, run_once=True, args=("later",), delay=60)
        return {"ok": "yes"}

    async with client_of(app) as client:
        assert (await client.post("/signup/ada@example.com")).json() == {"ok": "yes"}
        assert sent == ["ada@example.com"]  # the delayed one waits for the clock
        await clock.advance(60)
        assert sent == ["ada@example.com", "later"]


def test_a_handler_that_adds_work_does_not_wait_for_itself(backend: str) -> None:
    done = threading.Event()
    with Quiv(backend=backend, db_path=":memory:", shutdown_timeout=5) as scheduler:

        def parent() -> None:
            scheduler.add_task("child", done.set, run_once=True)

        with eager_mode(scheduler, timeout=5):
            scheduler.add_task("parent", parent, run_once=True)
            assert done.is_set()


def test_eager_mode_checks_its_arguments() -> None:
    with pytest.raises(ConfigurationError, match="scheduler"):
        with eager_mode(object()):  # type: ignore[arg-type]
            pass
    scheduler = Quiv()
    with pytest.raises(ConfigurationError, match="timeout"):
        with eager_mode(scheduler, timeout=-1):
            pass
    with eager_mode(scheduler):
        with pytest.raises(ConfigurationError, match="already"):
            with eager_mode(scheduler):
                pass
    run_until_idle(scheduler)  # never started: idle
