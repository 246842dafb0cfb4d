"""An event loop in a thread of its own, serving one async context manager.

This is the machinery under :class:`~quiv.Quiv`. anyio's blocking portal is
close to what is needed, but its calls raise from a thread that runs a trio
loop, and leaving ``start_blocking_portal()`` from such a thread waits forever
for a portal it could not stop. So the thread here takes calls through a
non-blocking hand-off (:func:`~quiv._xthread.loops.call_soon` with the
loop's token, or a :class:`~quiv._xthread.mailbox.Mailbox` for a burst of
posts) and hands results back through an
:class:`~quiv._xthread.mailbox.Future`, which can be waited for from any
thread: plain threads, threads running an asyncio loop, and threads running
a trio loop. Only the loop's own thread cannot wait for a
call (it would wait for itself); :meth:`LoopThread.on_loop_thread` tells.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import EventLoopToken, current_token

from .._errors import SchedulerStoppedError, sole_error
from .._xthread.loops import call_soon
from .._xthread.mailbox import Future, Mailbox

__all__ = ("Call", "LoopThread")

T = TypeVar("T")

_STOPPED = "the scheduler was shut down"
_CANCELLED = "the call was cancelled"


def _refused() -> BaseException:
    return SchedulerStoppedError(_STOPPED)


class Call(Future[T]):
    """One coroutine call handed to the loop thread, and its outcome (thread-safe)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        super().__init__()
        self.fn = fn

    async def run(self) -> None:
        """Run the call on the loop thread and settle it (never raises errors)."""
        with anyio.CancelScope() as scope:
            self.bind_scope(scope)
            try:
                result = await self.fn()
            except Exception as exc:
                self.set_exception(exc)
                return
            except BaseException:  # cancellation (re-raised) or a fatal error
                reason = _CANCELLED if self.cancel_reason is not None else _STOPPED
                self.set_exception(SchedulerStoppedError(reason))
                raise
            self.set_result(result)
        if scope.cancelled_caught:
            self.set_exception(SchedulerStoppedError(_CANCELLED))

    def cancel_here(self) -> None:
        """Cancel the call (on the loop thread)."""
        self.cancel_target(_CANCELLED)


class LoopThread:
    """A daemon thread running an event loop that serves an async context manager.

    :param backend: ``"asyncio"`` or ``"trio"``
    :param backend_options: passed to :func:`anyio.run`
    :param name: the thread's name
    """

    def __init__(
        self, backend: str, backend_options: Mapping[str, Any] | None, *, name: str
    ) -> None:
        self._backend = backend
        self._backend_options = dict(backend_options or {})
        self._name = name
        self._lock = threading.Lock()
        self._accepting = False
        self._pending: set[Call[Any]] = set()
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._token: EventLoopToken | None = None
        self._task_group: TaskGroup | None = None
        self._exit: anyio.Event | None = None
        self._context: contextvars.Context | None = None
        #: post()'s functions, each followed by its argument, run in order by one
        #: loop callback per batch
        self._posted = Mailbox(wake=self._run_posted, refused=_refused, raise_if_lost=True)
        #: Run the sync ``fn(arg)`` on the loop soon, without waiting (any thread):
        #: ``post(fn, arg)``. Posted functions and :meth:`submit` calls start in
        #: the order they were handed over; a burst of posts costs one wake-up of
        #: the loop. If *fn* raises, the loop gets the error and later posts still
        #: run. Passing *arg* separately, rather than a closure, lets a burst of
        #: posts allocate nothing per call; and this is the mailbox's own method,
        #: with no call in between. Raises :class:`SchedulerStoppedError` if the
        #: loop no longer takes calls.
        self.post: Callable[[Callable[[Any], object], Any], object] = self._posted.put_pair
        #: called on the loop thread after the loop ended (even if it crashed)
        self.on_exit: Callable[[BaseException | None], None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self, resource: AbstractAsyncContextManager[Any]) -> None:
        """Start the thread, enter *resource* there, and return once it is entered.

        :raises BaseException: whatever entering *resource* raised
        """
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        kwargs: dict[str, Any] = {}
        if sys.version_info >= (3, 14):  # never inherit the caller's context variables
            kwargs["context"] = contextvars.Context()
        thread = threading.Thread(
            target=self._thread_main, args=(resource, ready), name=self._name, daemon=True, **kwargs
        )
        self._thread = thread
        thread.start()
        try:
            ready.result()
        except BaseException as exc:
            thread.join()
            raise sole_error(exc) from None

    def on_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's own thread."""
        return self._thread_id is not None and threading.get_ident() == self._thread_id

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop_accepting(self) -> None:
        """Make :meth:`submit` refuse new calls (they raise SchedulerStoppedError)."""
        with self._lock:
            self._accepting = False
        self._posted.close()

    def request_exit(self) -> None:
        """On the loop thread: leave *resource* and end the loop once calls finish."""
        self.stop_accepting()
        if self._exit is not None:
            self._exit.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; return ``False`` if it is still alive."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- calls ---------------------------------------------------------------------

    def submit(self, fn: Callable[[], Awaitable[T]], *, final: bool = False) -> Call[T]:
        """Start ``fn()`` on the loop without blocking; return its :class:`Call`.

        :param final: allowed after :meth:`stop_accepting` (the shutdown call)
        :raises SchedulerStoppedError: if the loop no longer takes calls
        """
        call: Call[T] = Call(fn)
        with self._lock:
            token = self._token
            if token is None or not (self._accepting or final):
                raise SchedulerStoppedError(_STOPPED)
            self._pending.add(call)
        call.add_done_callback(lambda: self._forget(call))
        if self.on_loop_thread():
            self._start_call(call)
        elif not self._post(token, partial(self._start_call, call)):
            call.set_exception(SchedulerStoppedError(_STOPPED))
        return call

    def close_posts(self) -> None:
        """On the loop thread: refuse posts and calls from now on, and run the
        posted functions already taken, at once.

        A served resource that stops on its own calls this first, so that a
        post either raises :class:`SchedulerStoppedError` in its caller or runs
        while the resource still serves it.
        """
        self.stop_accepting()
        self._posted.run_pairs()

    def _run_posted(self) -> None:
        # On the loop thread, as a plain callback: see _post.
        context = self._context
        if context is None:
            self._posted.run_pairs()
        else:
            context.run(self._posted.run_pairs)

    def call(self, fn: Callable[[], Awaitable[T]], *, final: bool = False) -> T:
        """Run ``fn()`` on the loop and block until it returns (not on the loop thread).

        :raises SchedulerStoppedError: if the loop no longer takes calls
        """
        return self.submit(fn, final=final).wait()

    async def call_async(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on the loop; wait for it without blocking the caller's loop.

        Cancelling the caller cancels the call.
        """
        call = self.submit(fn)
        try:
            await call.wait_settled()
        except BaseException:
            self.cancel(call)
            raise
        return call.result()

    def cancel(self, call: Call[Any]) -> None:
        """Cancel *call* from any thread."""
        token = self._token
        if self.on_loop_thread():
            call.cancel_here()
        elif token is not None:
            self._post(token, call.cancel_here)

    def _post(self, token: EventLoopToken, fn: Callable[[], object]) -> bool:
        # A bare loop callback runs outside any task, where anyio cannot tell
        # which backend runs it; run it in the loop's own context so it can.
        context = self._context
        return call_soon(token, fn if context is None else partial(context.run, fn))

    def _forget(self, call: Call[Any]) -> None:
        with self._lock:
            self._pending.discard(call)

    def _start_call(self, call: Call[Any]) -> None:
        # Runs on the loop thread, often as a bare callback: it must never raise
        # (an exception escaping a trio ``run_sync_soon`` callback crashes the run).
        task_group = self._task_group
        if task_group is None or call.done:
            call.set_exception(SchedulerStoppedError(_STOPPED))
            return
        try:
            task_group.start_soon(call.run, name="quiv sync-face call")
        except RuntimeError:  # the task group is closing
            call.set_exception(SchedulerStoppedError(_STOPPED))

    # -- the thread ------------------------------------------------------------------

    def _thread_main(
        self,
        resource: AbstractAsyncContextManager[Any],
        ready: concurrent.futures.Future[None],
    ) -> None:
        self._thread_id = threading.get_ident()
        error: BaseException | None = None
        try:
            anyio.run(
                self._serve,
                resource,
                ready,
                backend=self._backend,
                backend_options=self._backend_options,
            )
        except BaseException as exc:
            error = exc
            if not ready.done():
                ready.set_exception(exc)
        finally:
            with self._lock:
                self._accepting = False
                self._token = None
                leftovers, self._pending = self._pending, set()
            self._posted.close()
            for call in leftovers:
                call.set_exception(SchedulerStoppedError(_STOPPED))
            if self.on_exit is not None:
                self.on_exit(error)

    async def _serve(
        self,
        resource: AbstractAsyncContextManager[Any],
        ready: concurrent.futures.Future[None],
    ) -> None:
        try:
            async with resource, anyio.create_task_group() as task_group:
                self._exit = anyio.Event()
                self._task_group = task_group
                self._context = contextvars.copy_context()
                with self._lock:
                    self._token = token = current_token()
                    self._accepting = True
                self._posted.open(token)
                ready.set_result(None)
                await self._exit.wait()
                task_group.cancel_scope.cancel()
        finally:
            self._task_group = None
