"""AsyncQuiv's start and stop: the store, the main-loop bridge and the engine.

:func:`start_engine` brings them up in a task group, in order;
:func:`stop_engine` takes them down at shutdown. The bridge comes in from
:class:`~quiv.AsyncQuiv` (its own, from :func:`bridge_here`, or the sync
face's); nothing is handed back but the engine. The scheduler's own state
stays with :class:`~quiv.AsyncQuiv`.
"""

from __future__ import annotations

import os
import threading
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import current_token

from .._backends import current_backend
from .._clock import LoopClock, as_clock
from .._errors import MainLoopUnavailableError
from .._events import Listeners
from .._mainloop import calls as _main
from .._mainloop.bridge import MainLoopBridge
from .._models import QuivConfig
from .._store._base import Store
from .._testkit.clock import VirtualClock
from .._typing import Logger

if TYPE_CHECKING:
    from .._core.engine import Engine

__all__ = ("bridge_here", "start_engine", "stop_engine")

#: how long shutdown waits for queued events at most, and at least past its timeout
_FLUSH_MAX = 5.0
_FLUSH_MIN = 0.25


def bridge_here(logger: Logger) -> MainLoopBridge:
    """A bridge that makes the current loop the main loop."""
    return MainLoopBridge(current_token(), threading.get_ident(), logger)


async def start_engine(
    stack: AsyncExitStack,
    config: QuivConfig,
    logger: Logger,
    listeners: Listeners,
    bridge: MainLoopBridge,
    *,
    own_bridge: bool,
) -> Engine:
    """Start the store, the bridge (if *own_bridge*) and the engine in a task group.

    Leaving *stack* cancels the task group.
    """
    from .._core.engine import Engine

    task_group = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(task_group.cancel_scope.cancel)
    store = _make_store(config, logger)
    await store.start(task_group)
    engine = Engine(
        pool_size=config.pool_size,
        clock=LoopClock() if config.clock is None else as_clock(config.clock),
        store=store,
        listeners=listeners,
        logger=logger,
        bridge=bridge,
        history_retention=float(config.history_retention_seconds),
        max_result_bytes=config.max_result_bytes,
        # results reach the disk only in a file the user named
        persistent=config.db_path is not None and os.fspath(config.db_path) != ":memory:",
        standby=config.host_mode,
    )
    if isinstance(engine.clock, VirtualClock):  # advance() waits for this scheduler's jobs
        engine.clock._attach(engine)
    path = None if config.db_path is None else os.fspath(config.db_path)
    if path is not None and path != ":memory:" and not path.startswith("file:"):
        from .._host.election import claim_database

        try:
            await claim_database(stack, task_group, engine, path, host_mode=config.host_mode)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await store.aclose()
            raise
    if own_bridge:  # (once nothing above can fail: a running bridge ends by stop_engine)
        await task_group.start(bridge.run)
    backend = config.worker_backend or current_backend().value
    await engine.start(task_group, backend)
    return engine


async def stop_engine(
    engine: Engine,
    bridge: MainLoopBridge,
    timeout: float | None,
    logger: Logger,
    *,
    flush_events: bool,
    own_bridge: bool,
) -> None:
    """Stop the engine, fail the waiters, flush the bridge and close the store.

    Call it in a shielded scope: it waits for running jobs up to *timeout*.
    """
    begin = anyio.current_time()
    try:
        abandoned = await engine.shutdown(timeout)
        # its jobs have ended (or are abandoned): another process may run the schedules
        engine.host.release_runner()
        if abandoned:
            names = ", ".join(f"{job.task_name!r} (job {job.id})" for job in abandoned)
            logger.warning(
                "quiv: shutdown abandoned %d job(s) still running after %s s: %s",
                len(abandoned),
                timeout,
                names,
            )
        if flush_events and not bridge.closed:
            # deliver the events of the jobs that just ended, but let no
            # hung listener stretch the shutdown much past its timeout
            budget = _FLUSH_MAX
            if timeout is not None:
                left = begin + timeout - anyio.current_time()
                budget = min(budget, max(left, _FLUSH_MIN))
            with anyio.move_on_after(budget):
                await _main.wait_call(bridge.call(lambda: None, (), {}))
    except MainLoopUnavailableError:
        pass  # the main loop's bridge closed meanwhile: there is nothing left to deliver
    finally:
        pending = bridge.pending
        if pending and own_bridge:
            logger.warning(
                "quiv: %d main-loop call(s) still pending at shutdown are cancelled",
                pending,
            )
        try:
            bridge.stop()
        finally:
            await engine.store.aclose()


def _make_store(config: QuivConfig, logger: Logger) -> Store:
    from .._store import MemoryStore, SQLiteStore

    if config.db_path == ":memory:":
        return MemoryStore(
            history_retention_seconds=config.history_retention_seconds, logger=logger
        )
    return SQLiteStore(
        config.db_path,
        history_retention_seconds=config.history_retention_seconds,
        logger=logger,
        host_mode=config.host_mode,
    )
