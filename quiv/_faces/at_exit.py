"""The sync face's safety nets: shutdown at interpreter exit, and after a fork.

A running scheduler registers a :class:`Running` object here (its runtime);
this module only ever calls it, and knows nothing of the scheduler's classes.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Protocol

__all__ = ("EXIT_TIMEOUT", "Running", "forget", "forked_message", "remember")

#: how long the exit hook waits for the running jobs of a forgotten scheduler
EXIT_TIMEOUT = 5.0


class Running(Protocol):
    """What a running scheduler gives the exit and fork hooks."""

    def shutdown_at_exit(self, timeout: float) -> None:
        """Shut down, waiting at most *timeout* seconds for running jobs; never raise."""

    def forked(self) -> None:
        """In a forked child: the scheduler's threads stayed in the parent."""


_live: weakref.WeakSet[Running] = weakref.WeakSet()
_lock = threading.Lock()
_hook_installed = False


def remember(running: Running) -> None:
    """Shut *running* down at interpreter exit if it is still registered then."""
    global _hook_installed
    with _lock:
        _live.add(running)
        if _hook_installed:
            return
        _hook_installed = True
    # threading._register_atexit hooks run before the interpreter joins
    # non-daemon threads, so the scheduler is stopped (and its jobs see their
    # stop event) while the program's other threads still run; plain atexit
    # hooks would run only after that join.
    # (private, with no public equivalent; tests/test_library_internals.py
    # fails if it goes away, and plain atexit is the fallback)
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(_shutdown_all)
        else:  # pragma: no cover - every supported CPython has it
            atexit.register(_shutdown_all)
    except RuntimeError:  # pragma: no cover - the interpreter is already exiting
        pass


def forget(running: Running) -> None:
    """The scheduler stopped: nothing to do for it at exit."""
    with _lock:
        _live.discard(running)


def forked_message(pid: int) -> str:
    """The error for a scheduler used in a process forked after it started (in process *pid*)."""
    return (
        f"this scheduler was started in process {pid}, before this process was forked from"
        " it, and it does not run here; start a scheduler in each process instead (with"
        " gunicorn --preload or uvicorn --workers, in the app's lifespan, not at import)"
    )


def _reset_after_fork() -> None:
    """In a forked child: the schedulers the parent was running have no threads here.

    Each is told so (:meth:`Running.forked`): its methods then raise
    :class:`~quiv.SchedulerStoppedError` instead of waiting for a thread that
    does not exist, the exit hook does not wait for it either, and ``start()``
    starts a new one in this process.
    """
    global _lock
    _lock = threading.Lock()
    schedulers = list(_live)
    _live.clear()
    for running in schedulers:
        running.forked()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def _shutdown_all() -> None:
    with _lock:
        schedulers = list(_live)
    for running in schedulers:
        running.shutdown_at_exit(EXIT_TIMEOUT)
