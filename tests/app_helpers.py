"""Helpers for the integration tests: real servers on 127.0.0.1, and a websocket reader.

Servers run in the test's own event loop: uvicorn on asyncio, hypercorn's trio
worker on trio. Every wait is bounded; nothing waits on a sleep.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import anyio
from sync_helpers import WAIT


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    """Serve *app* with uvicorn on a free port of 127.0.0.1; yield its base URL.

    The socket listens before uvicorn starts, so clients can connect at once:
    the server accepts them as soon as the app's lifespan has started.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # leave pytest's handlers alone
            yield

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, ws="websockets-sansio", lifespan="on")
    server = Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(server.serve, sockets=[sock]))
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
        assert server.started, "uvicorn did not start"
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def hypercorn_trio_server(app: Any) -> AsyncIterator[str]:
    """Serve *app* with hypercorn's trio worker on 127.0.0.1; yield its base URL."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = logging.getLogger("hypercorn.access")
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        binds = await tg.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield binds[0]
        finally:
            stop.set()


Predicate = Callable[[dict[str, Any]], bool]


async def receive_until(
    websocket: Any, *predicates: Predicate, timeout: float = WAIT
) -> list[dict[str, Any]]:
    """Read JSON messages until each predicate matched one; return all of them, in order."""
    messages: list[dict[str, Any]] = []
    missing = list(predicates)
    with anyio.fail_after(timeout):
        while missing:
            message: dict[str, Any] = await websocket.receive_json()
            messages.append(message)
            missing = [predicate for predicate in missing if not predicate(message)]
    return messages


def of_type(kind: str, **fields: Any) -> Predicate:
    """A predicate: a message of *kind* (``progress``, ``note``...) with these fields."""

    def matches(message: dict[str, Any]) -> bool:
        return message.get("type") == kind and all(message.get(k) == v for k, v in fields.items())

    return matches


def job_event(task_id: str, event: str) -> Predicate:
    """A predicate: the message says a job of *task_id* had *event* (``job_completed``, ...)."""

    def matches(message: dict[str, Any]) -> bool:
        return (
            message.get("type") == "job"
            and message["event"] == event
            and message["job"]["task_id"] == task_id
        )

    return matches


def progress_of(messages: list[dict[str, Any]], job_id: str) -> list[int]:
    """The ``done`` counts of the progress messages of *job_id*, in arrival order."""
    return [m["done"] for m in messages if m.get("type") == "progress" and m["job_id"] == job_id]
