"""quiv's own worker threads: daemon threads, so an abandoned handler never blocks exit.

:meth:`WorkerThreads.run_sync` is what ``anyio.to_thread.run_sync(...,
abandon_on_cancel=True)`` would do, minus one surprise: anyio's asyncio worker
threads are not daemons, so a handler that never returns, abandoned at
shutdown, would keep the process alive at exit (``threading._shutdown`` joins
every non-daemon thread). These threads are daemons on every backend.

A call runs in a copy of the caller's context, as with ``to_thread``. The
caller's loop learns that the call ended through a non-blocking hand-off
(:func:`~quiv._loops.wait_for_callback`), never by polling. A thread that
finishes a call waits for the next one, for up to *idle_timeout* seconds,
then exits; :meth:`WorkerThreads.close` makes idle threads exit at once and
busy ones as soon as their call returns. The pool does not bound the number
of threads: its callers do (the ready queue starts at most ``pool_size``
workers).
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

import sniffio

from .loops import wait_for_callback

__all__ = ("THREAD_NAME", "WorkerThreads")

T = TypeVar("T")

#: how long an idle thread waits for a call before it exits (as anyio's do)
IDLE_TIMEOUT = 10.0
#: worker threads are named "quiv worker 1", "quiv worker 2", ...
THREAD_NAME = "quiv worker"

_thread_numbers = itertools.count(1)


class _Call(Generic[T]):
    """One call to run on a worker thread, and how it ended."""

    __slots__ = ("_args", "_context", "_error", "_func", "_result", "notify")

    def __init__(self, func: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._func = func
        self._args = args
        self._context = contextvars.copy_context()
        # No event loop runs in the worker thread (sniffio must not see the caller's).
        self._context.run(sniffio.current_async_library_cvar.set, None)
        #: set when submitted: wakes the caller's loop
        self.notify: Callable[[], object] = _ignore
        self._result: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        """On the worker thread: call the function (the caller is not told yet)."""
        try:
            self._result = self._context.run(self._func, *self._args)
        except BaseException as exc:  # handed to the caller, as to_thread does
            self._error = exc

    def outcome(self) -> T:
        if self._error is not None:
            error, self._error = self._error, None  # no reference cycle through the traceback
            raise error
        return self._result  # type: ignore[return-value]  # T may include None


def _ignore() -> None:
    return None


class _Slot:
    """A worker thread's mailbox: the call it is to run next."""

    __slots__ = ("call", "wakeup")

    def __init__(self, call: _Call[Any] | None) -> None:
        self.call = call
        self.wakeup = threading.Event()


class WorkerThreads:
    """A pool of daemon threads that run one call at a time each."""

    def __init__(self, name: str = THREAD_NAME, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        #: idle threads' slots; the most recently idle is reused first, so
        #: surplus threads are the ones that time out
        self._idle: list[_Slot] = []
        self._closed = False

    async def run_sync(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on a worker thread and return its result.

        Cancelling the caller abandons the call: the caller stops waiting at
        once, the thread runs on until the function returns, and its result
        is dropped.
        """
        call: _Call[T] = _Call(func, args)
        await wait_for_callback(partial(self._submit, call))
        return call.outcome()

    def close(self) -> None:
        """Idle threads exit now, busy ones once their call returns (any thread)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for slot in idle:
            slot.wakeup.set()

    def _submit(self, call: _Call[Any], notify: Callable[[], object]) -> None:
        call.notify = notify
        with self._lock:
            if self._idle:
                slot = self._idle.pop()
                slot.call = call
                slot.wakeup.set()
                return
        # After close() too: the call still runs, then its thread exits.
        thread = threading.Thread(
            target=self._serve,
            args=(_Slot(call),),
            name=f"{self._name} {next(_thread_numbers)}",
            daemon=True,
        )
        thread.start()

    def _serve(self, slot: _Slot) -> None:
        """A worker thread's life: run calls until idle too long or closed."""
        call = slot.call
        slot.call = None
        while call is not None:
            call.run()
            # Idle *before* the caller hears of the end, so that a call it
            # makes next reuses this thread rather than starting another.
            parked = self._park(slot)
            call.notify()
            call = None  # keep no finished call (nor its result) while idle
            if parked:
                call = self._wait(slot)

    def _park(self, slot: _Slot) -> bool:
        """Offer this thread for the next call; ``False`` if the pool is closed."""
        with self._lock:
            if self._closed:
                return False
            slot.wakeup.clear()
            self._idle.append(slot)
            return True

    def _wait(self, slot: _Slot) -> _Call[Any] | None:
        """Wait for the next call for this thread; ``None`` means exit."""
        slot.wakeup.wait(self._idle_timeout)
        with self._lock:
            call, slot.call = slot.call, None
            if call is None and slot in self._idle:  # timed out
                self._idle.remove(slot)
            return call
