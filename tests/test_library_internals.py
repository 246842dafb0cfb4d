"""Canaries for the few internals of other libraries that quiv relies on.

Each has no public equivalent (the comment at its use says why). If a new
release of the library changes one, this file fails first and says which,
instead of quiv misbehaving quietly.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import anyio
import pytest
from anyio.lowlevel import current_token

pytestmark = pytest.mark.anyio


def test_threading_has_register_atexit() -> None:
    """quiv._faces.at_exit: hooks that run before the interpreter joins non-daemon threads."""
    assert callable(getattr(threading, "_register_atexit", None))


async def test_aiosqlite_connect_exposes_its_thread_before_it_starts(
    anyio_backend: tuple[str, object],
) -> None:
    """quiv._store._connection: the connection thread is made a daemon before it starts."""
    if anyio_backend[0] != "asyncio":
        pytest.skip("aiosqlite is asyncio-only")
    import aiosqlite

    pending = aiosqlite.connect(":memory:")
    thread = getattr(pending, "_thread", None)
    assert isinstance(thread, threading.Thread)
    assert not thread.is_alive()
    thread.daemon = True
    conn = await pending
    await conn.close()


async def test_an_event_loop_token_carries_the_native_loop() -> None:
    """quiv._xthread.loops.call_soon: a non-blocking post into another thread's loop."""
    native = current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        assert native is asyncio.get_running_loop()
    else:
        trio = sys.modules["trio"]
        assert isinstance(native, trio.lowlevel.TrioToken)
    posted = anyio.Event()
    assert callable(getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon)
    (getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon)(posted.set)
    with anyio.fail_after(5):
        await posted.wait()
