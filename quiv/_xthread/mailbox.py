"""The one cross-thread hand-off and the one settle-once future.

:class:`Mailbox` is a thread-safe deque that any thread fills and one event
loop drains, with at most one wake-up of that loop per batch: a put wakes the
loop only if the drain side is waiting and no wake-up is on its way. The
scheduler's inbox of job outcomes, the main-loop bridge and the sync face's
loop thread all hand work over through one.

:class:`Future` is the result of something handed to another thread or
loop: settled once, with a result or an exception, and waited for from a
plain thread (:meth:`Future.wait`) or from any event loop
(:meth:`Future.wait_settled`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
from anyio.lowlevel import EventLoopToken, current_token

from .loops import call_soon

__all__ = ("Future", "Mailbox")

T = TypeVar("T")


def _refused() -> BaseException:
    return RuntimeError("the mailbox is closed")


class Mailbox:
    """A thread-safe deque drained on one event loop, woken once per batch.

    The drain side works in one of two ways:

    * a *drain task* (no *wake* given) loops over :meth:`take_all` or
      :meth:`pop`, and awaits :meth:`wait` once the deque is empty; a put then
      sets the event the task waits on;
    * a *drain callback* (*wake* given): the wake-up is *wake* itself, run on
      the loop as a plain callback, which drains with :meth:`run_pairs`.
      Nothing waits in between: a put posts *wake* whenever none is pending.

    A closed mailbox refuses puts (they raise ``refused()``) and still drains
    what it holds. It is closed until it has a loop (the *token*, or
    :meth:`open`).

    :param loop_thread: the loop's thread, for a drain task: a put from that
        thread wakes the task at once rather than through the loop
    :param raise_if_lost: a put that cannot wake the loop (it has finished)
        raises ``refused()`` rather than return ``False``
    """

    __slots__ = (
        "_event",
        "_items",
        "_loop_thread",
        "_raise_if_lost",
        "_refused",
        "_token",
        "_waiting",
        "_wake",
        "closed",
        "handed",
        "lock",
    )

    def __init__(
        self,
        token: EventLoopToken | None = None,
        *,
        wake: Callable[[], object] | None = None,
        refused: Callable[[], BaseException] = _refused,
        loop_thread: int | None = None,
        raise_if_lost: bool = False,
    ) -> None:
        self._items: deque[Any] = deque()
        #: guards the deque and the flags; an owner may keep state that must
        #: change together with them under it too (the bridge's counters)
        self.lock = threading.Lock()
        self._token = token
        self._wake: Callable[[], object] = self._set_event if wake is None else wake
        self._refused = refused
        self._loop_thread = loop_thread
        self._raise_if_lost = raise_if_lost
        #: the drain side waits for a wake-up and none has been posted
        self._waiting = wake is not None
        self._event: anyio.Event | None = None
        self.closed = token is None
        #: how many items were handed over by :meth:`put` or :meth:`claim_idle`
        #: (not :meth:`put_pair`, whose only user has no use for the count)
        self.handed = 0

    def open(self, token: EventLoopToken) -> None:
        """Take puts from now on and wake the loop behind *token* for them."""
        with self.lock:
            self._token = token
            self.closed = False

    def close(self) -> None:
        """Refuse puts from now on (what is queued can still be drained)."""
        with self.lock:
            self.closed = True

    # -- any thread --------------------------------------------------------------

    def put(self, item: Any) -> bool:
        """Queue *item*; ``False`` if the loop has finished (the item stays queued).

        :raises BaseException: ``refused()``, if the mailbox is closed
        """
        with self.lock:
            if self.closed:
                raise self._refused()
            self._items.append(item)
            self.handed += 1
            if not self._waiting:
                return True  # the drain side is busy, or a wake-up is on its way
            self._waiting = False
        return self._post_wake()

    def put_pair(self, first: Any, second: Any) -> bool:
        """Queue two entries at once, taken together by :meth:`run_pairs`.

        Passing the two separately rather than as a tuple means a burst of puts
        allocates nothing per call. Otherwise as :meth:`put`.
        """
        with self.lock:
            if self.closed:
                raise self._refused()
            items = self._items
            items.append(first)
            items.append(second)
            if not self._waiting:
                return True
            self._waiting = False
        return self._post_wake()

    def claim_idle(self) -> bool:
        """Whether the drain side waits with nothing queued (and the mailbox is open).

        If so, one item counts as handed over without being queued: the caller
        may deliver it by another route, as it overtakes nothing.
        """
        with self.lock:
            idle = self._waiting and not self._items and not self.closed
            if idle:
                self.handed += 1
        return idle

    def _post_wake(self) -> bool:
        if self._loop_thread is not None and threading.get_ident() == self._loop_thread:
            self._wake()
            return True
        token = self._token
        assert token is not None, "an open mailbox has a loop"
        if call_soon(token, self._wake):
            return True
        if self._raise_if_lost:
            raise self._refused()
        return False

    # -- the drain side (on the loop) --------------------------------------------

    def pop(self) -> Any:
        """The oldest item, or ``None`` if there is none."""
        items = self._items
        return items.popleft() if items else None

    def take_all(self) -> list[Any]:
        """Every queued item, oldest first."""
        with self.lock:
            items = list(self._items)
            self._items.clear()
        return items

    async def wait(self) -> None:
        """Drain task: return once something is queued (at once if something is).

        It may also return with nothing queued: drain tasks loop anyway.
        """
        with self.lock:
            if self._items:
                return
            self._waiting = True
            self._event = event = anyio.Event()
        try:
            await event.wait()
        finally:
            with self.lock:
                self._waiting = False
                self._event = None

    def _set_event(self) -> None:
        event = self._event  # written only on the loop, where this runs
        if event is not None:
            event.set()

    def run_pairs(self) -> None:
        """Drain callback: call ``first(second)`` for each pair, in order, until empty.

        Also called directly, on the loop, to drain at once. If a function
        raises, the error propagates (to the loop) and the rest runs in a new
        wake-up: nothing stays queued for want of one.
        """
        items, lock = self._items, self.lock
        drained = False
        try:
            while True:
                with lock:
                    if not items:
                        self._waiting = True
                        drained = True
                        return
                    fn = items.popleft()
                    arg = items.popleft()
                fn(arg)
        finally:
            if not drained:
                self._wake_again()

    def _wake_again(self) -> None:
        with self.lock:
            token = self._token
            if token is None or not self._items:
                self._waiting = True
                return
        if not call_soon(token, self._wake):
            with self.lock:
                self._waiting = True


class Future(Generic[T]):
    """Settled once with a result or an exception; later settlements are ignored.

    Thread-safe. Wait from a plain thread with :meth:`wait`, from any event
    loop with :meth:`wait_settled`. An outcome whose target runs under a cancel
    scope can carry the cancellation hooks :meth:`bind_scope` and
    :meth:`cancel_target`.
    """

    __slots__ = (
        "_callbacks",
        "_done",
        "_error",
        "_lock",
        "_result",
        "_waiter",
        "cancel_reason",
        "scope",
    )

    #: why the target is to stop, once someone asked
    cancel_reason: str | None
    #: the target's cancel scope, owned by the target's loop
    scope: anyio.CancelScope | None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held until settled: a waiting thread blocks acquiring it, then
        # releases it for the next one. One bare lock is the cheapest
        # cross-thread wake-up (a threading.Event allocates a lock per wait and
        # wakes through a Condition), and it is on the critical path of
        # call_on_main and of every call into the sync face's loop.
        self._waiter = threading.Lock()
        self._waiter.acquire()
        self._done = False
        self._callbacks: list[Callable[[], object]] | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self.cancel_reason = None
        self.scope = None

    @property
    def done(self) -> bool:
        """``True`` once settled."""
        return self._done

    def _settle(self, result: Any, error: BaseException | None) -> bool:
        with self._lock:
            if self._done:
                return False
            self._result, self._error = result, error
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
        self._waiter.release()
        if callbacks is not None:
            for callback in callbacks:
                callback()
        return True

    def set_result(self, result: T) -> bool:
        """Settle with *result*; ``False`` (and ignored) if already settled."""
        return self._settle(result, None)

    def set_exception(self, error: BaseException) -> bool:
        """Settle with *error*; ``False`` (and ignored) if already settled."""
        return self._settle(None, error)

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call *callback* (in the settling thread) once settled; now if already."""
        with self._lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        callback()

    def result(self) -> T:
        """The result, or raise the error, of a settled outcome (no wait)."""
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def wait(self) -> T:
        """Plain thread: block until settled; return the result or raise the error."""
        if not self._done:
            self._waiter.acquire()
            self._waiter.release()
        return self.result()

    async def wait_settled(self) -> None:
        """Wait, in the current event loop, until settled (without raising its error).

        Settled from another thread, the outcome wakes this loop with a
        non-blocking hand-off; settled on this loop's own thread, directly.
        """
        if self._done:
            return
        event = anyio.Event()
        token = current_token()
        here = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == here:
                event.set()
            else:
                call_soon(token, event.set)

        self.add_done_callback(wake)
        await event.wait()

    # -- cancelling the target (on the target's loop) ------------------------------

    def bind_scope(self, scope: anyio.CancelScope) -> None:
        """The target runs in *scope*: cancel it now if cancellation was asked."""
        self.scope = scope
        if self.cancel_reason is not None:
            scope.cancel()

    def give_up(self, reason: str, error: BaseException) -> bool:
        """Settle with *error* because the waiting side gave up, noting *reason*.

        Return ``False`` if it was settled already.
        """
        with self._lock:
            if self._done:
                return False
            self.cancel_reason = reason
        return self.set_exception(error)

    def cancel_target(self, reason: str) -> None:
        """Ask the target to stop, and cancel its scope if it runs."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.scope is not None:
            self.scope.cancel()
