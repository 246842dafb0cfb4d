"""quiv.dashboard's live stream: server-sent events from a real server, coalesced per job.

uvicorn serves on asyncio and hypercorn's trio worker on trio (tests/app_helpers.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

pytest.importorskip("starlette")

import sniffio
from app_helpers import hypercorn_trio_server, uvicorn_server
from starlette.applications import Starlette
from starlette.routing import Mount
from sync_helpers import WAIT

from quiv import AsyncQuiv, Event, Job, JobStatus, Quiv
from quiv.dashboard import allow_all, dashboard
from quiv.dashboard._live import MAX_BATCH, MAX_KEYS, MIN_INTERVAL, Hub, Update
from quiv.integrations.starlette import lifespan

pytestmark = pytest.mark.integration


@asynccontextmanager
async def served(scheduler: AsyncQuiv | Quiv) -> AsyncIterator[str]:
    app = Starlette(
        routes=[Mount("/quiv", dashboard(scheduler, auth=allow_all))],
        lifespan=lifespan(scheduler, shutdown_timeout=5),
    )
    server = (
        uvicorn_server if sniffio.current_async_library() == "asyncio" else hypercorn_trio_server
    )
    async with server(app) as base:
        yield base


class Stream:
    """The messages of one open event stream, read from a plain TCP connection.

    (httpx's streaming generators warn when a trio test closes them midway,
    so this reads HTTP/1.1 chunked transfer encoding itself: a few lines.)
    """

    def __init__(self, connection: anyio.abc.ByteStream) -> None:
        self._connection = connection
        self._buffer = b""
        self._text = ""
        self.messages: list[dict[str, Any]] = []

    async def _fill(self) -> None:
        self._buffer += await self._connection.receive()

    async def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            await self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    async def open(self, path: str, host: str) -> None:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        await self._connection.send(request.encode())
        status = await self._line()
        assert status.split()[1] == b"200", status
        headers = {}
        while line := await self._line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"].startswith("text/event-stream")
        assert headers.get("transfer-encoding") == "chunked"

    async def _chunk(self) -> str:
        size = int((await self._line()).split(b";")[0], 16)
        assert size, "the stream ended"
        while len(self._buffer) < size + 2:
            await self._fill()
        chunk, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return chunk.decode()

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first message, received so far or next, that matches *predicate*."""
        for message in self.messages:
            if predicate(message):
                return message
        with anyio.fail_after(WAIT):
            while True:
                self._text += await self._chunk()
                *frames, self._text = self._text.split("\n\n")
                for frame in frames:
                    for line in frame.splitlines():
                        if line.startswith("data: "):
                            message: dict[str, Any] = json.loads(line[len("data: ") :])
                            self.messages.append(message)
                            if predicate(message):
                                return message


@asynccontextmanager
async def stream(base: str) -> AsyncIterator[Stream]:
    host_port = base.removeprefix("http://")
    host, _, port = host_port.rpartition(":")
    with anyio.fail_after(WAIT):
        connection = await anyio.connect_tcp(host, int(port))
    async with connection:
        events = Stream(connection)
        with anyio.fail_after(WAIT):
            await events.open("/quiv/events", host_port)
        await events.until(lambda m: m["type"] == "hello")
        yield events


def job_message(job_id: str | None = None, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def matches(message: dict[str, Any]) -> bool:
        if message["type"] != "job":
            return False
        job = message["job"]
        return (job_id is None or job["id"] == job_id) and all(
            job.get(k) == v for k, v in fields.items()
        )

    return matches


@pytest.mark.parametrize("face", ["async", "sync"])
async def test_progress_and_the_end_of_a_job_arrive_live(face: str) -> None:
    scheduler: AsyncQuiv | Quiv = AsyncQuiv() if face == "async" else Quiv()
    step = threading.Semaphore(0)
    reports = 1000

    def handler(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> str:
        _progress_hook(done=1, total=reports)
        assert step.acquire(timeout=WAIT)
        for done in range(2, reports + 1):
            _progress_hook(done=done, total=reports)
        assert step.acquire(timeout=WAIT)
        return "<done>"

    async with served(scheduler) as base, stream(base) as events:
        if isinstance(scheduler, AsyncQuiv):
            task_id = await scheduler.add_task("counting", handler, run_once=True)
        else:
            task_id = await anyio.to_thread.run_sync(
                lambda: scheduler.add_task("counting", handler, run_once=True)
            )
        first = await events.until(
            lambda m: job_message(status="running")(m) and (m["job"]["bar"] or {}).get("done") == 1
        )
        job_id = first["job"]["id"]
        assert first["job"]["bar"]["total"] == reports
        step.release()
        last = await events.until(
            lambda m: job_message(job_id)(m) and (m["job"]["bar"] or {}).get("done") == reports
        )
        assert last["job"]["bar"]["fraction"] == 1.0
        # a thousand reports reach the page as a handful of updates
        progress_updates = [m for m in events.messages if job_message(job_id)(m)]
        assert len(progress_updates) < reports / 10
        step.release()
        ended = await events.until(job_message(job_id, status="completed"))
        assert ended["job"]["result"] == '"<done>"'
        # a run-once task is not a schedule: the page lists its job, not the task
        assert not [
            m for m in events.messages if m["type"] == "task" and m["task"]["id"] == task_id
        ]
        stats = await events.until(lambda m: m["type"] == "stats")
        assert stats["stats"]["loop_alive"] is True


async def test_task_changes_arrive_live() -> None:
    scheduler = AsyncQuiv()
    async with served(scheduler) as base, stream(base) as events:

        async def changes() -> str:
            task_id = await scheduler.add_task("later", lambda: None, interval=3600, delay=3600)
            await scheduler.pause_task(task_id)
            await scheduler.remove_task(task_id)
            return task_id

        task_id = await changes()  # the server runs on this test's loop
        removed = await events.until(lambda m: m["type"] == "task" and m["event"] == "task_removed")
        assert removed["task"]["id"] == task_id


async def test_a_page_that_leaves_removes_the_listeners() -> None:
    listening: list[tuple[str, bool]] = []

    def listen(events: list[Event], callback: Callable[..., Any], on: bool) -> None:
        listening.extend((event.value, on) for event in events)

    hub = Hub(listen)
    first, second = hub.open(), hub.open()
    assert hub.pages == 2
    assert {on for _, on in listening} == {True}
    registered = len(listening)
    hub.close(first)
    assert len(listening) == registered
    hub.close(second)
    assert hub.pages == 0
    assert [on for _, on in listening[registered:]] == [False] * registered


def a_job(job_id: str, done: int) -> Job:
    return Job(
        id=job_id,
        task_id="t",
        task_name="t",
        status=JobStatus.RUNNING,
        started_at=None,
        ended_at=None,
        duration_seconds=None,
        error_message=None,
        attempt=1,
        progress={"done": done, "total": 100},
    )


async def test_a_mailbox_keeps_the_latest_update_per_job_and_paces_each() -> None:
    hub = Hub(lambda events, callback, on: None)
    mailbox = hub.open()
    for done in range(100):
        hub.offer("job:a", Update("job_progress", a_job("a", done)))
    hub.offer("job:b", Update("job_progress", a_job("b", 7)))
    now = 1000.0
    updates, reload, wait = mailbox.take(now)
    assert [(u.record.id, u.record.progress) for u in updates] == [  # type: ignore[union-attr]
        ("a", {"done": 99, "total": 100}),
        ("b", {"done": 7, "total": 100}),
    ]
    assert not reload and wait is None
    hub.offer("job:a", Update("job_progress", a_job("a", 100)))
    held, _, wait = mailbox.take(now + MIN_INTERVAL / 2)
    assert held == [] and wait == pytest.approx(MIN_INTERVAL / 2)
    later, _, wait = mailbox.take(now + MIN_INTERVAL)
    assert [u.record.progress for u in later] == [{"done": 100, "total": 100}]  # type: ignore[union-attr]
    hub.offer("job:b", Update("job_progress", a_job("b", 8)))
    with anyio.fail_after(WAIT):
        await mailbox.wait(WAIT * 2)  # the offer woke the page, which had read everything
    hub.close(mailbox)


async def test_a_mailbox_that_overflows_asks_for_a_reload() -> None:
    hub = Hub(lambda events, callback, on: None)
    mailbox = hub.open()
    for n in range(MAX_KEYS + 1):
        hub.offer(f"job:{n}", Update("job_progress", a_job(str(n), 1)))
    updates, reload, _ = mailbox.take(1000.0)
    assert reload and updates == []
    hub.close(mailbox)


async def test_a_burst_asks_for_a_reload_instead_of_a_thousand_updates() -> None:
    hub = Hub(lambda events, callback, on: None)
    mailbox = hub.open()
    for n in range(MAX_BATCH + 1):
        hub.offer(f"job:{n}", Update("job_started", a_job(str(n), 0)))
    updates, reload, _ = mailbox.take(1000.0)
    assert reload and updates == []
    hub.offer("job:next", Update("job_started", a_job("next", 0)))
    updates, reload, _ = mailbox.take(1000.0)
    assert not reload and [u.record.id for u in updates] == ["next"]
    hub.close(mailbox)


async def test_a_removal_is_not_undone_by_a_later_update() -> None:
    from quiv import Task, TaskStatus

    task = Task(
        id="t",
        task_name="t",
        args=(),
        kwargs={},
        interval_seconds=1.0,
        fixed_interval=True,
        run_once=False,
        status=TaskStatus.ACTIVE,
        next_run_at=None,
        timeout_seconds=None,
        max_retries=0,
        retry_backoff_seconds=30.0,
        retry_attempt=0,
        jitter_seconds=0.0,
        rerun_requested=False,
    )
    hub = Hub(lambda events, callback, on: None)
    mailbox = hub.open()
    hub.offer("task:t", Update("task_removed", task))
    hub.offer("task:t", Update("job_cancelled", task))
    updates, _, _ = mailbox.take(1000.0)
    assert [u.event for u in updates] == ["task_removed"]
    hub.close(mailbox)


async def test_in_host_mode_the_page_shows_and_cancels_the_jobs_of_another_worker(
    tmp_path: Path,
) -> None:
    import httpx

    db = str(tmp_path / "host.db")
    step = threading.Semaphore(0)

    def handler(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> None:
        _progress_hook(done=1, total=4)
        assert step.acquire(timeout=WAIT)
        _progress_hook(done=2, total=4)
        _stop_event.wait(WAIT * 2)

    async with AsyncQuiv(db_path=db, host_mode=True) as other:
        serving = AsyncQuiv(db_path=db, host_mode=True)
        async with served(serving) as base, stream(base) as events:
            task_id = await other.add_task("elsewhere", handler, run_once=True)

            def of_other(done: int) -> Callable[[dict[str, Any]], bool]:
                return lambda m: (
                    job_message(status="running")(m)
                    and m["job"]["task_id"] == task_id
                    and (m["job"]["bar"] or {}).get("done") == done
                )

            first = await events.until(of_other(1))
            job_id = first["job"]["id"]
            step.release()
            await events.until(of_other(2))
            async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
                page = await client.get("/quiv/")
                token = page.cookies["quiv_dashboard_csrf"]
                listed = (await client.get("/quiv/api/jobs?status=running")).json()["jobs"]
                assert [job["id"] for job in listed] == [job_id]
                cancel = await client.post(
                    f"/quiv/jobs/{job_id}/cancel", headers={"x-csrf-token": token}
                )
                assert cancel.status_code == 200
            ended = await events.until(job_message(job_id, status="cancelled"))
            assert ended["job"]["task_name"] == "elsewhere"
