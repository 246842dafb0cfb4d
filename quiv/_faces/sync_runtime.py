"""The sync face's runtime: an AsyncQuiv on a loop thread of its own.

:class:`SyncRuntime` starts that thread (making the caller's loop, if any, the
main loop, whose bridge it creates, runs and hands to the AsyncQuiv), stops it
(from any thread, a job or the loop itself, or at interpreter exit), reacts to
the loop ending on its own, and carries the blocking calls of
:class:`~quiv.Quiv` into the loop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from .._backends import running_loop_token
from .._context import current_job
from .._core.records import TaskState
from .._errors import QuivError, SchedulerStoppedError
from .._mainloop import calls as _main
from .._mainloop.bridge import MainLoopBridge
from .._states import NEW, RUNNING, STARTING, STOPPED, STOPPING
from .._typing import Logger
from .._xthread.loops import spawn_here
from .async_face import AsyncQuiv
from .at_exit import forget, forked_message, remember
from .loop_thread import LoopThread

__all__ = ("SyncRuntime",)

T = TypeVar("T")

#: how long shutdown() waits for the scheduler's thread after the engine stopped
_JOIN_TIMEOUT = 10.0


class SyncRuntime:
    """The loop thread of one run of a :class:`~quiv.Quiv` and its
    :class:`~quiv._states.Lifecycle`, which only moves forward.

    While it runs, it is registered for the shutdown at interpreter exit
    (:mod:`quiv._faces.at_exit`).
    """

    def __init__(
        self,
        async_quiv: AsyncQuiv,
        backend: str,
        backend_options: Mapping[str, Any],
        logger: Logger,
    ) -> None:
        self.async_quiv = async_quiv
        self._backend = backend
        self._backend_options = backend_options
        self._logger = logger
        self._lock = threading.Lock()
        self.state = NEW
        #: the process that started it
        self.started_in = os.getpid()
        #: set in a forked child: the process the scheduler runs in (it does not run here)
        self.forked_from: int | None = None
        self.loop: LoopThread | None = None
        #: the caller's loop's bridge, if start() was called on a loop
        self._bridge: MainLoopBridge | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()

    def fresh(self) -> SyncRuntime:
        """A new, unstarted runtime with this one's settings and listeners."""
        return SyncRuntime(
            self.async_quiv._fresh(), self._backend, self._backend_options, self._logger
        )

    def describe(self) -> str:
        """The face's ``repr``: ``<Quiv running pool_size=10 backend=asyncio>``."""
        pool_size = self.async_quiv.config.pool_size
        return f"<Quiv {self.state} pool_size={pool_size} backend={self._backend}>"

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread unless it runs already (see ``Quiv.start``)."""
        while True:
            with self._lock:
                state = self.state
                if state is NEW:
                    self.state = STARTING
                    break
            if state is RUNNING:
                return
            if state is not STARTING:
                raise SchedulerStoppedError(
                    "this Quiv was shut down; create a new one to start again"
                )
            self._started.wait()  # another thread is starting it
        try:
            self._start()
        except BaseException:
            self._set_stopped()
            raise
        else:
            with self._lock:  # unless the loop has already ended
                running = self.state is STARTING
                if running:
                    self.state = RUNNING
                    self.started_in, self.forked_from = os.getpid(), None
            if running:
                remember(self)
        finally:
            self._started.set()

    def _start(self) -> None:
        cancel_drain: Callable[[], None] | None = None
        token = running_loop_token()
        if token is not None:  # the caller's loop is the main loop
            bridge = MainLoopBridge(token, threading.get_ident(), self._logger)
            self.async_quiv._use_main_loop(bridge)
            cancel_drain = spawn_here(bridge.run, "quiv main-loop bridge")
            self._bridge = bridge
        loop = LoopThread(self._backend, self._backend_options, name=f"quiv-{id(self):x}")
        loop.on_exit = self._on_loop_exit
        self.loop = loop
        # However the scheduler stops (even by a callback awaiting
        # async_quiv.shutdown()), the tasks already handed to its loop are added
        # first, and add_task raises from then on.
        self.async_quiv._on_stopping = loop.close_posts
        try:
            loop.start(self.async_quiv)
        except BaseException:
            if cancel_drain is not None:
                cancel_drain()
            raise

    def forked(self) -> None:
        """In a forked child: the loop thread stayed in the parent; this runtime is over."""
        self._lock = threading.Lock()
        self.state = STOPPED
        self._started.set()
        self._stopped.set()
        self.forked_from = self.started_in

    def wait_until_started(self) -> None:
        """Block while another thread is starting the scheduler."""
        if self.state is STARTING:
            self._started.wait()

    def wait_until_stopped(self) -> bool:
        """Whether the scheduler has been shut down (waiting for a shutdown under way).

        ``False`` if it is new, starting or running.
        """
        if self.state is STOPPING:
            self._stopped.wait()
        if self.state is not STOPPED:
            return False
        self._join()
        return True

    # -- stop ------------------------------------------------------------------

    def stop(self, timeout: float | None, *, flush: bool) -> None:
        """Shut the scheduler down and end the thread (see ``Quiv.shutdown``)."""
        while True:
            with self._lock:
                state = self.state
                if state is NEW:
                    self.state = STOPPED
                    self.async_quiv._discard_declared()
                    self._stopped.set()
                    return
                if state is RUNNING:
                    self.state = STOPPING
                    break
            if state is STARTING:
                self._started.wait()
                continue
            if not (self._on_own_loop() or self._on_main_thread() or current_job()):
                self._stopped.wait()  # another thread (or a callback) is shutting it down
                self._join()
            return
        loop = self.loop
        assert loop is not None
        loop.stop_accepting()
        flush = flush and not self._on_main_thread() and not loop.on_loop_thread()

        async def final() -> None:
            try:
                await self.async_quiv._shutdown(timeout, flush_events=flush)
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
            if not self._join():
                self._logger.warning("quiv: the scheduler's thread did not end after shutdown")
            forget(self)
            self._stopped.set()

    def shutdown_at_exit(self, timeout: float) -> None:
        """The safety net: shut down a scheduler that is still running at exit."""
        if self.state is not RUNNING:
            return
        name = self.describe()
        self._logger.warning("quiv: %s was never shut down; shutting it down at exit", name)
        configured = self.async_quiv.config.shutdown_timeout
        try:
            self.stop(timeout if configured is None else min(configured, timeout), flush=False)
        except Exception:  # pragma: no cover - never let one stop the others
            self._logger.exception("quiv: shutting down %s at exit failed", name)

    def _on_loop_exit(self, error: BaseException | None) -> None:
        # On the scheduler's thread, when its loop has ended (normally or not).
        with self._lock:
            crashed = self.state is RUNNING
        if crashed and error is not None:
            self._logger.error("quiv: the scheduler's loop stopped unexpectedly", exc_info=error)
        bridge = self._bridge
        if bridge is not None:
            _main.unregister(bridge)
            if not bridge.closed:
                bridge.stop()
        self._set_stopped()

    def _set_stopped(self) -> None:
        with self._lock:
            self.state = STOPPED
        forget(self)
        self._stopped.set()

    def _join(self) -> bool:
        return self.loop is None or self.loop.join(_JOIN_TIMEOUT)

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
        if self.state is not RUNNING or self.loop is None:
            if self.state in (NEW, STARTING):
                raise SchedulerStoppedError("the scheduler is not running; call start() first")
            if self.forked_from is not None:
                raise SchedulerStoppedError(forked_message(self.forked_from))
            raise SchedulerStoppedError("the scheduler was shut down")
        return self.loop

    def call(self, method: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Await the AsyncQuiv *method* on the loop; block until it returns."""
        loop = self.running_loop()
        if loop.on_loop_thread():
            name = method.__name__
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

    def stop_running(self, job_id: object) -> bool:
        """Off the loop: set a running job's stop event now (see ``Engine.stop_running``)."""
        try:
            loop = self.running_loop()
        except SchedulerStoppedError:
            return False  # (the loop's cancel_job raises)
        engine = self.async_quiv._engine
        if engine is None or loop.on_loop_thread():
            return False
        return isinstance(job_id, str) and engine.stop_running(job_id)

    def add_task(self, task: TaskState, first_delay: float, requested_at: float) -> None:
        """Hand a validated task to the loop without waiting for it."""
        loop = self.running_loop()
        if loop.on_loop_thread():
            self.async_quiv._register_task(task, first_delay)
        else:
            task.hold_request(first_delay, requested_at)
            loop.post(self._register_task, task)

    def _register_task(self, task: TaskState) -> None:
        # Runs on the scheduler's loop as a posted callback. It cannot fail: the
        # task was validated, registering it never raises, and the scheduler is
        # running, since it runs the callbacks posted before it stops (see
        # LoopThread.close_posts); a post after that raises in add_task's caller.
        first_delay, requested_at = task.held_request()
        self.async_quiv._register_task(task, first_delay, requested_at)
