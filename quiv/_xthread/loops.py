"""Non-blocking hand-offs between threads and event loops.

anyio's ``from_thread`` functions block the calling thread until the target
loop answers, which would stall a worker's own event loop (asyncio) or raise
(trio). quiv only needs to *post* a callable into another loop, so it uses
each backend's thread-safe "call soon" primitive through the loop's
:class:`anyio.lowlevel.EventLoopToken`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.lowlevel import EventLoopToken, current_token

from .._backends import ASYNCIO, current_backend

__all__ = ("call_soon", "close_awaitable", "spawn_here", "wait_for_callback")


def call_soon(token: EventLoopToken, func: Callable[[], object]) -> bool:
    """Post *func* to run soon on the loop behind *token*; never block.

    Safe from any thread, the target loop's own included. Return ``False`` if
    the loop has finished (the call is dropped).
    """
    # anyio has no non-blocking "post to that loop" (from_thread.run_sync waits
    # for the loop's answer), so quiv uses the loop behind the token:
    # asyncio's call_soon_threadsafe or trio's run_sync_soon.
    # tests/test_library_internals.py fails if the token stops carrying it.
    native: Any = token.native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        try:
            native.call_soon_threadsafe(func)
        except RuntimeError:  # the loop is closed
            return False
        return True
    trio = sys.modules["trio"]
    try:
        native.run_sync_soon(func)
    except trio.RunFinishedError:
        return False
    return True


async def wait_for_callback(subscribe: Callable[[Callable[[], object]], object]) -> None:
    """Wait, in the current event loop, until a callback fires on any thread.

    *subscribe* registers the callback it is given (for example a settled
    future's done-callback); the callback wakes this loop with a non-blocking
    hand-off, so the thread that fires it never blocks.
    """
    event = anyio.Event()
    token = current_token()
    subscribe(lambda: call_soon(token, event.set))
    await event.wait()


def close_awaitable(awaitable: object) -> None:
    """Close a coroutine that will never be awaited (so Python does not warn)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def spawn_here(func: Callable[[], Awaitable[object]], name: str) -> Callable[[], None]:
    """Start ``func()`` as a background task of the event loop running in this thread.

    Must be called from synchronous code running on a loop's thread (for
    example a sync function called by a coroutine). Used for the main-loop
    dispatcher of the sync face, whose main loop is not the scheduler's own.
    Return a function that cancels the task (call it on the same loop).
    """
    if current_backend() is ASYNCIO:
        loop = asyncio.get_running_loop()

        async def runner() -> None:
            await func()

        task = loop.create_task(runner(), name=name)
        _keep_alive.add(task)
        task.add_done_callback(_keep_alive.discard)

        def cancel() -> None:
            task.cancel()

        return cancel

    import trio

    cancel_scope = trio.CancelScope()

    async def trio_runner() -> None:
        with cancel_scope:
            await func()

    trio.lowlevel.spawn_system_task(trio_runner, name=name)
    return cancel_scope.cancel


_keep_alive: set[asyncio.Task[None]] = set()
