"""The bridge to the main loop: one inbox, drained by one task on that loop.

Worker threads and worker loops never touch the main loop's objects. They
append work to a thread-safe inbox and, if the drain task is idle, post one
wake-up through the loop's token (a non-blocking hand-off). The drain task
runs on the main loop and

* runs *ordered* items (progress callbacks, listeners) one after the other,
  awaiting async ones, so they are delivered in call order;
* starts *fire-and-forget* async targets (:func:`~quiv.run_on_main`) as tasks
  in its own task group, so stopping the bridge cancels them;
* runs :func:`~quiv.call_on_main` targets and settles their :class:`MainCall`.

Failures of user callables are logged, never raised into the main loop.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import EventLoopToken

from .._core.handlers import callable_name
from .._errors import JobCancelledError, MainLoopUnavailableError
from .._typing import Logger
from .._xthread.loops import call_soon, close_awaitable
from .._xthread.mailbox import Future, Mailbox

__all__ = ("MainCall", "MainLoopBridge")


#: after this many items in a row the drain task yields to other tasks
_BATCH = 128
#: what a callable may raise on the main loop to end the program, as anywhere there
_FATAL = (KeyboardInterrupt, SystemExit)


def _refused() -> BaseException:
    return MainLoopUnavailableError("the scheduler's main-loop bridge is closed")


class _Kind(Enum):
    ORDERED = 1
    FIRE = 2
    CALL = 3


class MainCall(Future[Any]):
    """The pending result of a call handed to the main loop (thread-safe).

    An :class:`~quiv._xthread.mailbox.Future` that its caller may give up on.
    """

    __slots__ = ()

    def cancel(self, reason: str = "job cancelled") -> bool:
        """Give up waiting; the main loop cancels the target if it runs."""
        return self.give_up(reason, JobCancelledError(reason))


class MainLoopBridge:
    """Hands work from any thread to one event loop (the *main loop*)."""

    def __init__(self, token: EventLoopToken, thread_id: int, logger: Logger) -> None:
        self.token = token
        self.thread_id = thread_id
        self._logger = logger
        #: items are ``(kind, func, args, kwargs, what, call)``
        self._box = Mailbox(token, refused=_refused, loop_thread=thread_id)
        #: items settled minus targets started here, under ``self._box.lock``
        self._settled_count = 0
        self._task_group: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None

    # -- any thread ------------------------------------------------------------

    def on_main_thread(self) -> bool:
        """Whether the caller runs on the main loop's thread."""
        return threading.get_ident() == self.thread_id

    @property
    def pending(self) -> int:
        """Items handed over and not yet settled."""
        box = self._box
        with box.lock:
            return box.handed - self._settled_count

    @property
    def closed(self) -> bool:
        return self._box.closed

    def submit(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        what: str,
    ) -> None:
        """Run ``func(*args, **kwargs)`` on the main loop after earlier ordered items.

        Async results are awaited before the next ordered item runs.
        """
        self._post(_Kind.ORDERED, func, args, kwargs, what, None)

    def fire(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        """Fire and forget: run a sync target, or start an async one as a task."""
        self._post(_Kind.FIRE, func, args, kwargs, "run_on_main target", None)

    def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        into: MainCall | None = None,
    ) -> MainCall:
        """Run the target on the main loop; its outcome settles the returned call.

        The call is *into* if given (so the caller can hook it up first: once
        it is posted, the main loop wakes and waits for the GIL, and whatever
        the caller still does before it blocks delays the round trip).

        When nothing else is queued the call skips the drain task: it is posted
        straight to the loop, as ``anyio.from_thread.run_sync`` does, which
        saves a task switch per round trip. Queued items keep their order.
        """
        call = MainCall() if into is None else into
        if not self._box.claim_idle():
            self._post(_Kind.CALL, func, args, kwargs, "call_on_main target", call)
        elif not call_soon(self.token, partial(self._call_now, func, args, kwargs, call)):
            self._settled()
            call.set_exception(MainLoopUnavailableError("the main loop has stopped"))
        return call

    def _call_now(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        call: MainCall,
    ) -> None:
        """Main loop (a plain callback): run a call posted past the inbox."""
        if call.done or self._task_group is None or self._box.closed:
            self._settled()
            if not call.done:
                call.set_exception(MainLoopUnavailableError("the scheduler stopped"))
            return
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._settled()
            call.set_exception(exc)
            return
        self._settled()
        if not inspect.isawaitable(result):
            call.set_result(result)
            return
        # Starting a task needs a task context: let the drain task await it.
        awaitable = result
        try:
            self._post(_Kind.CALL, lambda: awaitable, (), {}, "call_on_main target", call)
        except MainLoopUnavailableError as exc:
            close_awaitable(awaitable)
            call.set_exception(exc)

    def run_here(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        """On the main loop's thread: run a sync target inline, start an async one.

        Failures are logged. Before the bridge runs, the call is queued instead.
        """
        task_group = self._task_group
        if task_group is None or self._box.closed:
            self.fire(func, args, kwargs)
            return
        what = "run_on_main target"
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:  # a sync call is never cancelled: all of it is its own
            if isinstance(exc, _FATAL):
                raise
            self._log_failure(what, func, exc)
            return
        if inspect.isawaitable(result):
            with self._box.lock:
                self._settled_count -= 1
            task_group.start_soon(self._await_target, result, what, func, None)

    def cancel_call(self, call: MainCall, reason: str) -> None:
        """Give up on *call* and cancel its target if it is running."""
        if call.cancel(reason):
            call_soon(self.token, partial(call.cancel_target, reason))

    def _post(
        self,
        kind: _Kind,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        what: str,
        call: MainCall | None,
    ) -> None:
        if not self._box.put((kind, func, args, kwargs, what, call)):
            self._logger.warning("quiv: the main loop has stopped; %s not delivered", what)

    # -- main loop only --------------------------------------------------------

    def _settled(self) -> None:
        with self._box.lock:
            self._settled_count += 1

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Drain the inbox until :meth:`stop` is called (run on the main loop)."""
        try:
            # Shielded so that events of jobs ended by a host cancellation are
            # still delivered: only stop() ends it, by cancelling this scope.
            # So a cancellation that reaches the code below was delivered by
            # this scope (or by a call's own scope) exactly when that scope's
            # ``cancel_called`` is set; anything else is a callable's failure.
            with anyio.CancelScope(shield=True) as scope:
                self._scope = scope
                if self._box.closed:  # stop() came first (run() started with spawn_here)
                    scope.cancel()
                async with anyio.create_task_group() as task_group:
                    self._task_group = task_group
                    task_status.started()
                    await self._drain_forever(task_group)
        finally:
            self._close_inbox()

    async def _drain_forever(self, task_group: TaskGroup) -> None:
        box = self._box
        while True:
            handled = 0
            item = box.pop()
            while item is not None:
                await self._handle(task_group, *item)
                handled += 1
                if handled % _BATCH == 0:
                    await anyio.lowlevel.checkpoint()
                item = box.pop()
            await box.wait()

    def stop(self) -> None:
        """Stop accepting work; stop draining and cancel running targets (any thread)."""
        self._box.close()
        if self.on_main_thread():
            self._stop_here()
        else:
            call_soon(self.token, self._stop_here)

    def _stop_here(self) -> None:
        if self._scope is not None:
            self._scope.cancel()  # the drain task and every target started in its group

    def _close_inbox(self) -> None:
        self._box.close()
        leftovers = self._box.take_all()
        for _kind, _func, _args, _kwargs, _what, call in leftovers:
            if call is not None:
                call.set_exception(
                    MainLoopUnavailableError("the scheduler stopped before the call ran")
                )

    async def _handle(
        self,
        task_group: TaskGroup,
        kind: _Kind,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        what: str,
        call: MainCall | None,
    ) -> None:
        if call is not None and call.done:  # the caller gave up before it ran
            self._settled()
            return
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:  # a sync call is never cancelled: all of it is its own
            if isinstance(exc, _FATAL):
                raise
            self._settled()
            if call is not None:
                call.set_exception(exc)
            else:
                self._log_failure(what, func, exc)
            return
        if not inspect.isawaitable(result):
            self._settled()
            if call is not None:
                call.set_result(result)
            return
        if kind is _Kind.ORDERED:
            await self._await_logged(result, what, func)
        else:
            task_group.start_soon(self._await_target, result, what, func, call)

    async def _await_logged(
        self, awaitable: Awaitable[Any], what: str, func: Callable[..., Any]
    ) -> None:
        try:
            await awaitable
        except BaseException as exc:
            if not self._own_failure(exc):
                raise
            self._log_failure(what, func, exc)
        finally:
            self._settled()

    async def _await_target(
        self, awaitable: Awaitable[Any], what: str, func: Callable[..., Any], call: MainCall | None
    ) -> None:
        try:
            with anyio.CancelScope() as scope:
                if call is not None:
                    call.bind_scope(scope)
                result = await awaitable
            if call is not None:
                if scope.cancelled_caught:
                    call.set_exception(JobCancelledError(call.cancel_reason or "cancelled"))
                else:
                    call.set_result(result)
        except BaseException as exc:
            if not self._own_failure(exc):
                raise
            if call is not None:
                call.set_exception(exc)
            else:
                self._log_failure(what, func, exc)
        finally:
            if call is not None and not call.done:
                call.set_exception(
                    MainLoopUnavailableError("the scheduler stopped before the call finished")
                )
            self._settled()

    def _own_failure(self, exc: BaseException) -> bool:
        """Whether *exc*, out of an awaited callable, is the callable's failure to report.

        Not KeyboardInterrupt or SystemExit, nor the cancellation that
        :meth:`stop` delivers through the bridge's own scope (the only one that
        reaches here: the scope is shielded, and a call's own scope catches the
        cancellation it delivers). But a cancellation exception raised while
        that scope is not cancelled (say, by awaiting a future that was
        cancelled) is, and must not stop the bridge or reach the host as a
        cancellation.
        """
        if isinstance(exc, _FATAL):
            return False
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            return not (self._scope is not None and self._scope.cancel_called)
        return True

    def _log_failure(self, what: str, func: Callable[..., Any], exc: BaseException) -> None:
        self._logger.error("quiv: %s %s raised", what, callable_name(func), exc_info=exc)
