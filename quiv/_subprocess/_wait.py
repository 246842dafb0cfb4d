"""Wait for the child to exit while its :class:`~._stopper.Stopper` watches for stops.

On Linux 5.3+ (:func:`open_pidfd` succeeds) the job thread sleeps in one
``poll()`` over the child's pipes, its pidfd and a private wake-up pipe that
the job's cancel callback writes to. Elsewhere the pipes have a thread each
(:mod:`._pipe_threads`) and the job thread waits for the child in slices of
:data:`~._stopper.POLL_INTERVAL` seconds.

(The fallback path once waited in :meth:`~subprocess.Popen.communicate`
slices instead. That cannot work with ``input``: a slice that times out
cannot be resumed with the rest of the input, because ``communicate`` writes
to stdin only in a call whose own ``input`` is given, and refuses the input
a second time.)
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from .._context import control_of
from ._pipe_threads import Collector, Feeder, take
from ._pipes import DRAIN_LIMIT, PIPE_BUF, READ_SIZE, Input, close, drain, joined, start_input
from ._stopper import Stopper

__all__ = ("open_pidfd", "wait_for_exit")

#: Fallback path only: after a stop, how long to wait for more output (or the
#: end of a pipe) before giving up on it. Long enough for a reader thread that
#: was just woken to be scheduled on a busy machine.
_DRAIN_TIMEOUT = 0.25


def wait_for_exit(stopper: Stopper, input: Input | None) -> tuple[Any, Any]:
    """Wait until the child is gone; return ``(stdout, stderr)``.

    They are decoded in text mode, except after a stop, where they are bytes
    (as in :class:`subprocess.TimeoutExpired`). The child is reaped.
    """
    pidfd = open_pidfd(stopper.proc.pid)
    if pidfd < 0:
        return _wait_polling(stopper, input)
    stopper.pidfd = pidfd
    try:
        waker = _Waker()
        unregister: Callable[[], None] = _noop
        try:
            if stopper.job is not None:
                unregister = control_of(stopper.job).on_cancel(waker)
            return _wait_pidfd(stopper, input, waker)
        finally:
            unregister()
            waker.close()
    finally:
        stopper.pidfd = -1
        os.close(pidfd)


def open_pidfd(pid: int) -> int:
    """Return a pidfd for *pid*, or -1 where the platform offers none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or not hasattr(signal, "pidfd_send_signal"):
        return -1
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # ENOSYS (Linux < 5.3), EPERM (seccomp), ESRCH (auto-reaped child)
        return -1
    return fd


class _Waker:
    """The job's cancel callback: one byte into a pipe that the job thread polls.

    It runs on the cancelling thread (often the scheduler's event loop), so it
    never blocks and never raises. The lock keeps it from writing to the
    descriptor once :meth:`close` has run, even if the job is cancelled just then.
    """

    __slots__ = ("_lock", "_write_fd", "read_fd")

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._write_fd >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._write_fd, b"\0")

    def close(self) -> None:
        with self._lock:
            os.close(self._write_fd)
            self._write_fd = -1
        os.close(self.read_fd)


def _noop() -> None:
    pass


def _wait_pidfd(stopper: Stopper, input: Input | None, waker: _Waker) -> tuple[Any, Any]:
    """Linux: one poll() over the pipes, the pidfd and the wake-up pipe."""
    proc = stopper.proc
    out_fd = -1 if proc.stdout is None else proc.stdout.fileno()
    err_fd = -1 if proc.stderr is None else proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {fd: [] for fd in (out_fd, err_fd) if fd >= 0}
    with selectors.PollSelector() as selector:
        pending = start_input(proc, input)
        offset = 0
        pipes: set[int] = set(chunks)
        if pending is not None:
            assert proc.stdin is not None
            selector.register(proc.stdin, selectors.EVENT_WRITE)
            pipes.add(proc.stdin.fileno())
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                selector.register(stream, selectors.EVENT_READ)
        selector.register(stopper.pidfd, selectors.EVENT_READ)
        selector.register(waker.read_fd, selectors.EVENT_READ)
        exited = False
        while not (exited and not pipes):
            now = time.monotonic()
            stopper.check(now)
            if stopper.stop_kind is not None:
                if proc.stdin is not None and not proc.stdin.closed:
                    close(selector, pipes, proc.stdin)
                if exited:
                    break  # do not wait for grandchildren that hold the pipes
            for key, _ in selector.select(stopper.wait_time(now, polling=False)):
                if key.fd == stopper.pidfd:
                    exited = True  # reaped below, once no more signals are sent
                    selector.unregister(key.fileobj)
                elif key.fd == waker.read_fd:
                    selector.unregister(key.fileobj)  # check() reads the job's state
                elif key.fd in chunks:
                    data = os.read(key.fd, READ_SIZE)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        close(selector, pipes, key.fileobj)
                else:  # stdin
                    assert pending is not None
                    try:
                        offset += os.write(key.fd, pending[offset : offset + PIPE_BUF])
                    except BrokenPipeError:
                        offset = len(pending)
                    if offset >= len(pending):
                        close(selector, pipes, key.fileobj)
        if stopper.stop_kind is not None:
            drain(selector, chunks, pipes)
    proc.wait()  # the child has exited: this only reaps it
    decode = stopper.stop_kind is None
    return (
        joined(proc.stdout, chunks.get(out_fd), decode=decode),
        joined(proc.stderr, chunks.get(err_fd), decode=decode),
    )


def _wait_polling(stopper: Stopper, input: Input | None) -> tuple[Any, Any]:
    """Elsewhere: a thread per pipe (:mod:`._pipe_threads`); wait for the child in slices."""
    proc = stopper.proc
    data = start_input(proc, input)
    feeder = None if data is None else Feeder(take(proc, "stdin"), data)
    out = None if proc.stdout is None else Collector(take(proc, "stdout"), "stdout")
    err = None if proc.stderr is None else Collector(take(proc, "stderr"), "stderr")
    collectors = [c for c in (out, err) if c is not None]
    try:
        while True:
            now = time.monotonic()
            stopper.check(now)
            exited = proc.poll() is not None
            if stopper.stop_kind is not None and exited:
                _collect_the_rest(collectors)
                break
            reading = next((c for c in collectors if not c.done), None)
            if exited and reading is None:
                break
            timeout = stopper.wait_time(now, polling=True)
            assert timeout is not None
            if reading is not None:
                reading.join(timeout)  # as communicate() does: the output's end first
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
    finally:
        for collector in collectors:
            collector.abandon()
    if stopper.stop_kind is None:
        if feeder is not None:
            feeder.join(_DRAIN_TIMEOUT)  # still blocked only if a grandchild holds stdin
        for failed in (feeder, *collectors):
            if failed is not None and failed.error is not None:
                raise failed.error
    decode = stopper.stop_kind is None
    return (
        None if out is None else joined(out.stream, out.chunks(), decode=decode),
        None if err is None else joined(err.stream, err.chunks(), decode=decode),
    )


def _collect_the_rest(collectors: list[Collector]) -> None:
    """After a stop, once the child has exited: wait for the output it left in the pipes.

    Wait while it keeps coming, up to :data:`~._pipes.DRAIN_LIMIT` bytes, but
    not for a grandchild that holds a pipe open without writing to it.
    """
    for collector in collectors:
        limit = collector.size + DRAIN_LIMIT
        size = -1
        while not collector.done and size != collector.size and collector.size < limit:
            size = collector.size
            collector.join(_DRAIN_TIMEOUT)
