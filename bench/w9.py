"""W9, the host's own requests: a real uvicorn server answering while jobs run.

Every system's runner calls :func:`serve_under_load` inside its asyncio loop,
with two callables that add one sync and one ``async def`` no-op job to its
scheduler (``floor-threads``, the baseline, adds nothing: no scheduler at
all). This module then:

1. serves a trivial ASGI app with ``uvicorn.Server`` on 127.0.0.1 in that
   same loop (the host's loop, as in a real app), on a free port;
2. adds jobs at a steady rate from a task on that loop: every 10 ms, 20 sync
   and 5 async ones (2,000 and 500 a second);
3. runs the load generator (``python -m bench.loadgen``, standard library
   only) as a subprocess: a fixed number of requests over a fixed number of
   keep-alive connections, stopping by itself; its latencies come back as
   JSON.

Reported: request latency p50/p99 (ms, after a warm-up), requests/s, and
the jobs/s added and run meanwhile (the steady load the scheduler really
had; the jobs, :func:`sync_job` and :func:`async_job`, count their runs).
Needs uvicorn in the runner's venv.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import Result, now

#: one producer tick: this many sync and async jobs every TICK seconds
TICK = 0.01
SYNC_PER_TICK = 20
ASYNC_PER_TICK = 5

AddJob = Callable[[], Any]

_RUNS = itertools.count()  # next() is atomic in CPython: safe from any thread


def sync_job() -> None:
    """W9's sync job: counts its run."""
    next(_RUNS)


async def async_job() -> None:
    """W9's ``async def`` job: counts its run."""
    next(_RUNS)


def _runs() -> int:
    return next(_RUNS)  # (counts itself once: negligible)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A trivial endpoint: ``200 ok`` for any request."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _call(add: AddJob) -> None:
    result = add()
    if isinstance(result, Awaitable):
        await result


async def _produce(add_sync: AddJob, add_async: AddJob, added: list[int]) -> None:
    """Add jobs at the steady rate until cancelled; count them in *added*."""
    next_tick = now()
    while True:
        for _ in range(SYNC_PER_TICK):
            await _call(add_sync)
        for _ in range(ASYNC_PER_TICK):
            await _call(add_async)
        added[0] += SYNC_PER_TICK + ASYNC_PER_TICK
        next_tick += TICK
        await asyncio.sleep(max(0.0, next_tick - now()))


async def serve_under_load(
    params: dict[str, Any],
    add_sync: AddJob | None,
    add_async: AddJob | None,
) -> Result:
    """Serve, load the server, and measure; jobs are added only if *add_sync* is given."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", http="h11"
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # the error it ended with
        await asyncio.sleep(0.01)
    added = [0]
    producer = None
    if add_sync is not None and add_async is not None:
        producer = asyncio.ensure_future(_produce(add_sync, add_async, added))
    try:
        await asyncio.sleep(params["ramp"])  # the steady state first
        added[0] = 0
        runs0 = _runs()
        t0 = now()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            str(port),
            str(params["requests"]),
            str(params["concurrency"]),
            str(params["warmup"]),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), params["limit_s"])
        elapsed = now() - t0
        jobs, runs = added[0], _runs() - runs0
    finally:
        if producer is not None:
            producer.cancel()
        server.should_exit = True
        await serving
    found = json.loads(out.decode().strip().splitlines()[-1])
    result = Result().set(
        req_p50_ms=found["p50_ms"],
        req_p99_ms=found["p99_ms"],
        req_per_s=found["per_s"],
        errors=found["errors"],
    )
    if producer is None:
        return result.na("no scheduler", "jobs_added_per_s", "jobs_run_per_s")
    return result.set(jobs_added_per_s=jobs / elapsed, jobs_run_per_s=runs / elapsed)
