"""The sync face's safety nets: the caller's loop, and shutdown at interpreter exit."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import TYPE_CHECKING

import sniffio
from anyio.lowlevel import EventLoopToken, current_token

if TYPE_CHECKING:
    from .sync_face import Quiv

__all__ = ("forget", "remember", "running_loop_token")

#: how long the exit hook waits for the running jobs of a forgotten scheduler
EXIT_TIMEOUT = 5.0

_live: weakref.WeakSet[Quiv] = weakref.WeakSet()
_lock = threading.Lock()
_hook_installed = False


def running_loop_token() -> EventLoopToken | None:
    """The token of the event loop running in this thread, or ``None`` if there is none.

    anyio's worker threads (sync FastAPI endpoints, for example) run no loop.
    """
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    try:
        return current_token()
    except Exception:  # a library sniffio knows but anyio does not run here
        return None


def remember(scheduler: Quiv) -> None:
    """Shut *scheduler* down at interpreter exit if it is still running then."""
    global _hook_installed
    with _lock:
        _live.add(scheduler)
        if _hook_installed:
            return
        _hook_installed = True
    # threading._register_atexit hooks run before the interpreter joins
    # non-daemon threads, so the scheduler is stopped (and its jobs see their
    # stop event) while the program's other threads still run; plain atexit
    # hooks would run only after that join.
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(_shutdown_all)
        else:  # pragma: no cover - every supported CPython has it
            atexit.register(_shutdown_all)
    except RuntimeError:  # pragma: no cover - the interpreter is already exiting
        pass


def _reset_after_fork() -> None:
    """In a forked child: the schedulers the parent was running have no threads here.

    Each is marked stopped, so its methods raise
    :class:`~quiv.SchedulerStoppedError` instead of waiting for a thread that
    does not exist, the exit hook does not wait for it either, and ``start()``
    starts a new one in this process.
    """
    global _lock
    _lock = threading.Lock()
    schedulers = list(_live)
    _live.clear()
    for scheduler in schedulers:
        scheduler._runtime.forked()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def forget(scheduler: Quiv) -> None:
    with _lock:
        _live.discard(scheduler)


def _shutdown_all() -> None:
    with _lock:
        schedulers = list(_live)
    for scheduler in schedulers:
        try:
            scheduler._shutdown_at_exit(EXIT_TIMEOUT)
        except Exception:  # pragma: no cover - never let one stop the others
            scheduler._logger.exception("quiv: shutting down %r at exit failed", scheduler)
