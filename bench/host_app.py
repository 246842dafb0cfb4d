"""The app ``bench/host.py`` serves with three workers in host mode.

Every worker declares the same keyed tasks: ``tick`` every ``QUIV_BENCH_TICK``
seconds (``0`` leaves it out), appending ``"<pid> <time>"`` to
``QUIV_BENCH_TICKS``, and a daily task that never comes due while the bench
runs. A worker whose scheduler started appends its pid to
``QUIV_BENCH_WORKERS``. ``QUIV_BENCH_OFF=1`` starts no scheduler at all: the
baseline of an idle server.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from quiv import AsyncQuiv


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def tick() -> None:
    _append(os.environ["QUIV_BENCH_TICKS"], f"{os.getpid()} {time.time():.6f}\n")


def nightly() -> None:
    pass


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if os.environ.get("QUIV_BENCH_OFF") == "1":
        _append(os.environ["QUIV_BENCH_WORKERS"], f"{os.getpid()}\n")
        yield
        return
    async with AsyncQuiv(db_path=os.environ["QUIV_BENCH_DB"], host_mode=True) as scheduler:
        every = float(os.environ.get("QUIV_BENCH_TICK", "0"))
        if every:
            await scheduler.add_task("tick", tick, interval=every, key="tick")
        hour = (time.gmtime().tm_hour + 12) % 24
        await scheduler.add_task("nightly", nightly, cron=f"0 {hour} * * *", key="nightly")
        _append(os.environ["QUIV_BENCH_WORKERS"], f"{os.getpid()}\n")
        yield


app = Starlette(lifespan=lifespan)
