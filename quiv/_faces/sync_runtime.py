"""The sync face's runtime: an AsyncQuiv on a loop thread of its own.

:class:`SyncRuntime` starts that thread (making the caller's loop, if any, the
main loop), stops it (from any thread, a job or the loop itself), reacts to
the loop ending on its own, and carries the blocking calls of
:class:`~quiv.Quiv` into the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .._context import current_job
from .._core.records import TaskState
from .._errors import QuivError, SchedulerStoppedError
from .._mainloop import calls as _main
from .._mainloop.bridge import MainLoopBridge
from .._typing import Logger
from .._xthread.loops import spawn_here
from .async_face import AsyncQuiv
from .at_exit import forget, remember, running_loop_token
from .loop_thread import LoopThread

if TYPE_CHECKING:
    from .sync_face import Quiv

__all__ = ("SyncRuntime",)

T = TypeVar("T")

#: how long shutdown() waits for the scheduler's thread after the engine stopped
_JOIN_TIMEOUT = 10.0


class SyncRuntime:
    """The loop thread of one :class:`~quiv.Quiv` and its state (new, starting,
    running, stopping, stopped), which only moves forward."""

    def __init__(
        self,
        owner: Quiv,
        async_quiv: AsyncQuiv,
        backend: str,
        backend_options: Mapping[str, Any],
        logger: Logger,
    ) -> None:
        #: the face, registered for the shutdown at interpreter exit while it runs
        self._owner = owner
        self._async = async_quiv
        self._backend = backend
        self._backend_options = backend_options
        self._logger = logger
        self._lock = threading.Lock()
        self.state = "new"
        self.loop: LoopThread | None = None
        self._bridge: MainLoopBridge | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread unless it runs already (see ``Quiv.start``)."""
        while True:
            with self._lock:
                state = self.state
                if state == "new":
                    self.state = "starting"
                    break
            if state == "running":
                return
            if state == "starting":  # another thread is starting it
                self._started.wait()
                continue
            raise SchedulerStoppedError("this Quiv was shut down; create a new one to start again")
        try:
            self._start()
        except BaseException:
            with self._lock:
                self.state = "stopped"
            self._stopped.set()
            raise
        else:
            with self._lock:
                self.state = "running"
        finally:
            self._started.set()
        remember(self._owner)

    def _start(self) -> None:
        cancel_drain: Callable[[], None] | None = None
        token = running_loop_token()
        if token is not None:  # the caller's loop is the main loop
            bridge = MainLoopBridge(token, threading.get_ident(), self._logger)
            self._async._use_main_loop(bridge)
            cancel_drain = spawn_here(bridge.run, "quiv main-loop bridge")
            self._bridge = bridge
        loop = LoopThread(self._backend, self._backend_options, name=f"quiv-{id(self._owner):x}")
        loop.on_exit = self._on_loop_exit
        self.loop = loop
        # However the scheduler stops (even by a callback awaiting
        # async_quiv.shutdown()), the tasks already handed to its loop are added
        # first, and add_task raises from then on.
        self._async._on_stopping = loop.close_posts
        try:
            loop.start(self._async)
        except BaseException:
            if cancel_drain is not None:
                cancel_drain()
            raise

    def forked(self) -> None:
        """In a forked child: the loop thread stayed in the parent; this runtime is over."""
        self._lock = threading.Lock()
        self.state = "stopped"
        self._started.set()
        self._stopped.set()

    def wait_until_started(self) -> None:
        """Block while another thread is starting the scheduler."""
        if self.state == "starting":
            self._started.wait()

    def wait_until_stopped(self) -> bool:
        """Whether the scheduler has been shut down (waiting for a shutdown under way).

        ``False`` if it is new, starting or running.
        """
        if self.state == "stopping":
            self._stopped.wait()
        if self.state != "stopped":
            return False
        if self.loop is not None:
            self.loop.join(_JOIN_TIMEOUT)
        return True

    # -- stop ------------------------------------------------------------------

    def stop(self, timeout: float | None, *, flush: bool) -> None:
        """Shut the scheduler down and end the thread (see ``Quiv.shutdown``)."""
        while True:
            with self._lock:
                state = self.state
                if state == "new":
                    self.state = "stopped"
                    self._async._discard_declared()
                    self._stopped.set()
                    return
                if state == "running":
                    self.state = "stopping"
                    break
            if state == "starting":
                self._started.wait()
                continue
            if not (self._on_own_loop() or self._on_main_thread() or current_job()):
                self._stopped.wait()  # another thread (or a callback) is shutting it down
                if self.loop is not None:
                    self.loop.join(_JOIN_TIMEOUT)
            return
        loop = self.loop
        assert loop is not None
        loop.stop_accepting()
        flush = flush and not self._on_main_thread() and not loop.on_loop_thread()

        async def final() -> None:
            try:
                await self._async._shutdown(timeout, flush_events=flush)
            finally:
                loop.request_exit()

        if loop.on_loop_thread() or current_job() is not None:
            # The scheduler's own thread cannot wait for itself, and a job
            # cannot wait for a shutdown that waits for that very job.
            loop.submit(final, final=True)
            return
        try:
            loop.call(final, final=True)
        except SchedulerStoppedError:
            pass  # the loop ended on its own meanwhile
        finally:
            if not loop.join(_JOIN_TIMEOUT):
                self._logger.warning("quiv: the scheduler's thread did not end after shutdown")
            forget(self._owner)
            self._stopped.set()

    def _on_loop_exit(self, error: BaseException | None) -> None:
        # On the scheduler's thread, when its loop has ended (normally or not).
        with self._lock:
            crashed = self.state == "running"
            if self.state in ("running", "stopping"):
                self.state = "stopped"
        if crashed and error is not None:
            self._logger.error("quiv: the scheduler's loop stopped unexpectedly", exc_info=error)
        bridge = self._bridge
        if bridge is not None:
            _main.unregister(bridge)
            if not bridge.closed:
                bridge.stop()
        if self.state == "stopped":
            forget(self._owner)
            self._stopped.set()

    def _on_main_thread(self) -> bool:
        bridge = self._bridge
        return bridge is not None and bridge.on_main_thread()

    def _on_own_loop(self) -> bool:
        return self.loop is not None and self.loop.on_loop_thread()

    # -- calls into the loop -----------------------------------------------------

    def running_loop(self) -> LoopThread:
        """The loop thread, if the scheduler runs.

        :raises SchedulerStoppedError: if it does not
        """
        if self.state != "running" or self.loop is None:
            if self.state in ("new", "starting"):
                raise SchedulerStoppedError("the scheduler is not running; call start() first")
            raise SchedulerStoppedError("the scheduler was shut down")
        return self.loop

    def call(self, name: str, method: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Await ``Quiv.<name>``'s twin *method* on the loop; block until it returns."""
        loop = self.running_loop()
        if loop.on_loop_thread():
            raise QuivError(
                f"Quiv.{name}() cannot block the scheduler's own event loop, which runs "
                "this code (a callback of a Quiv started outside any event loop): call it "
                f"from another thread, or `await scheduler.async_quiv.{name}(...)` in an "
                "async callback"
            )
        return loop.call(partial(method, *args, **kw))

    async def call_async(self, method: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await *method* on the loop from async code on any loop, without blocking it."""
        loop = self.running_loop()
        if loop.on_loop_thread():
            return await method(*args)
        return await loop.call_async(partial(method, *args))

    def call_plain(self, method: Callable[..., T], *args: Any) -> T:
        """Run a non-blocking method of the engine on its loop (directly if on it)."""
        loop = self.running_loop()
        if loop.on_loop_thread():
            return method(*args)

        async def run() -> T:
            return method(*args)

        return loop.call(run)

    def add_task(
        self, loop: LoopThread, task: TaskState, first_delay: float, requested_at: float
    ) -> None:
        """Hand a validated task to *loop* without waiting for it."""
        if loop.on_loop_thread():
            self._async._register_task(task, first_delay)
        else:
            task.hold_request(first_delay, requested_at)
            loop.post(self._register_task, task)

    def _register_task(self, task: TaskState) -> None:
        # Runs on the scheduler's loop as a posted callback. It cannot fail: the
        # task was validated, registering it never raises, and the scheduler is
        # running, since it runs the callbacks posted before it stops (see
        # LoopThread.close_posts); a post after that raises in add_task's caller.
        first_delay, requested_at = task.held_request()
        self._async._register_task(task, first_delay, requested_at)
