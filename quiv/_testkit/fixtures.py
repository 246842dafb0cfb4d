"""The bodies of the pytest plugin's fixtures (the plugin, ``_quiv_pytest``, is outside quiv).

The plugin module is loaded in every pytest session of a project that has
quiv installed, so it imports nothing of quiv; each fixture imports this
module when a test first uses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from .._faces.async_face import AsyncQuiv
from .._faces.sync_face import Quiv
from .clock import VirtualClock

__all__ = ("SHUTDOWN_TIMEOUT", "async_scheduler", "backend_name", "clock", "sync_scheduler")

#: how long the fixtures' schedulers wait for running jobs at teardown (seconds)
SHUTDOWN_TIMEOUT = 5.0


def clock() -> VirtualClock:
    """``quiv_clock``: a fresh VirtualClock at its default start."""
    return VirtualClock()


async def async_scheduler(clock: VirtualClock) -> AsyncIterator[AsyncQuiv]:
    """``quiv_scheduler``: a running AsyncQuiv on *clock*, history in memory."""
    async with AsyncQuiv(clock=clock, db_path=":memory:", shutdown_timeout=SHUTDOWN_TIMEOUT) as s:
        yield s


def backend_name(anyio_backend: object) -> str:
    """The backend an ``anyio_backend`` fixture value names (a name, or ``(name, options)``)."""
    if isinstance(anyio_backend, str):
        return anyio_backend
    if isinstance(anyio_backend, tuple) and anyio_backend and isinstance(anyio_backend[0], str):
        return anyio_backend[0]
    return "asyncio"


def sync_scheduler(clock: VirtualClock, backend: str) -> Iterator[Quiv]:
    """``quiv_sync_scheduler``: a running Quiv on *clock*; shut down at the end, failed or not."""
    scheduler = Quiv(
        clock=clock, db_path=":memory:", shutdown_timeout=SHUTDOWN_TIMEOUT, backend=backend
    )
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.shutdown()
