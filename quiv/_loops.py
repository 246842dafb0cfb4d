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

from anyio.lowlevel import EventLoopToken

__all__ = ("call_soon", "spawn_here")


def call_soon(token: EventLoopToken, func: Callable[[], object]) -> bool:
    """Post *func* to run soon on the loop behind *token*; never block.

    Safe from any thread, the target loop's own included. Return ``False`` if
    the loop has finished (the call is dropped).
    """
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


def spawn_here(func: Callable[[], Awaitable[object]], name: str) -> Callable[[], None]:
    """Start ``func()`` as a background task of the event loop running in this thread.

    Must be called from synchronous code running on a loop's thread (for
    example a sync function called by a coroutine). Used for the main-loop
    dispatcher of the sync face, whose main loop is not the scheduler's own.
    Return a function that cancels the task (call it on the same loop).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:

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
