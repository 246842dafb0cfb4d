"""Run a child process from a sync job, and stop it when the job is cancelled.

:func:`run_subprocess` is :func:`subprocess.run` for code that runs inside a
job. While it waits, the job can still be cancelled (``cancel_job``, the
task's ``timeout``, ``remove_task``, shutdown): the child is then terminated,
given ``kill_grace`` seconds, killed if it is still there, reaped, and
:class:`~quiv.JobCancelledError` is raised in the job.

How the waiting thread learns about a cancellation without polling: on Linux
(kernel 5.3 or later) the job thread sleeps in one ``poll()`` on the child's
pipes, a pidfd of the child (readable when it exits) and the read end of a
private wake-up pipe. The job's cancel callback, run by the cancelling thread,
only writes one byte to that pipe; everything else — signalling, the grace
period, reaping — happens on the job thread, which is also the only one that
reaps the child, so a signal can never reach a recycled process id. Where
there is no pidfd (macOS, Windows, older Linux), the job thread waits in
:meth:`subprocess.Popen.communicate` slices of :data:`_POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import os
import reprlib
import select
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from ._context import JobContext, current_job
from ._errors import ConfigurationError, JobCancelledError

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath

__all__ = ("run_subprocess",)

#: How often stop requests are checked where they cannot wake the waiting thread:
#: a ``stop_event`` that is not the current job's own, and platforms without pidfd.
_POLL_INTERVAL = 0.05
#: Bytes read from a pipe at a time (as :mod:`subprocess` does).
_READ_SIZE = 32768
#: After a stop, read at most this much output that is already waiting in the pipes.
_DRAIN_LIMIT = 1 << 20
#: Fallback path only: how long to wait for the pipes to close after a stop.
_DRAIN_TIMEOUT = 0.05

#: What ``input`` may be: ``str`` in text mode, bytes-like otherwise.
_Input: TypeAlias = "str | bytes | bytearray | memoryview"
#: The kinds of stop (``_Supervisor.stop_kind``).
_CANCELLED = "cancelled"
_TIMED_OUT = "timed out"


def run_subprocess(
    args: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    timeout: float | None = None,
    kill_grace: float = 5.0,
    check: bool = False,
    capture_output: bool = False,
    input: _Input | None = None,
    stop_event: threading.Event | None = None,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run a command and wait for it, like :func:`subprocess.run`, but stop it on cancel.

    Call it from **sync** code running in a job (a sync handler, or anything
    it calls, or a thread started with the job's :mod:`contextvars` context):
    it blocks the calling thread until the child exits. The job is found with
    :func:`~quiv.current_job`; outside a job, and without ``stop_event``, it
    simply behaves like :func:`subprocess.run`.

    When the job is cancelled (``cancel_job``, the task's ``timeout``,
    ``remove_task``, shutdown) — or ``stop_event`` is set — the child is sent
    ``SIGTERM``; if it has not exited after ``kill_grace`` seconds it is sent
    ``SIGKILL``; it is then reaped and :class:`~quiv.JobCancelledError` is
    raised, with the job's cancel reason as its message. If the job was
    already cancelled, no process is started. Cancellation requested through
    quiv wakes the waiting thread at once (on Linux, within a few
    milliseconds plus the time the child takes to exit).

    When ``timeout`` expires the child is stopped the same way and
    :class:`subprocess.TimeoutExpired` is raised, carrying the output read so
    far as bytes (as :func:`subprocess.run` does). Note that
    :func:`subprocess.run` kills at once; here the child gets ``kill_grace``
    seconds to exit cleanly first.

    Which processes are signalled: only the direct child. Processes it
    started itself keep running unless it passes the signal on. To stop a
    whole tree, start the child in a new session with
    ``start_new_session=True`` (or ``process_group=0`` on Python 3.11+): it
    then leads its own process group and the signals go to the **whole
    group**. Once the direct child has exited after a stop, this function
    returns even if a grandchild still holds the output pipes open.

    On Windows, ``terminate()`` is ``TerminateProcess``: the child is killed at
    once, ``kill_grace`` has no effect and process groups are not signalled.
    There, and on platforms without pidfd (macOS, Linux before 5.3), stop
    requests are noticed within about 50 ms rather than at once. A
    ``stop_event`` other than the job's own event is likewise checked every
    50 ms, since setting a :class:`threading.Event` cannot wake a thread that
    waits for something else. Setting the job's stop event by hand is not a
    cancellation request; cancel the job through the scheduler instead.

    For **async** handlers use :func:`anyio.run_process` (or
    :func:`anyio.open_process`) instead: the job's cancel scope cancels it,
    which terminates the child. Calling this function directly from an async
    handler would block its event loop.

    :param args: the program and its arguments, as for :class:`subprocess.Popen`
    :param timeout: seconds to let the child run before stopping it and raising
        :class:`subprocess.TimeoutExpired`; ``None`` (the default) waits as long
        as it takes
    :param kill_grace: seconds between ``SIGTERM`` and ``SIGKILL`` when the child
        is stopped; ``0`` kills at once
    :param check: raise :class:`subprocess.CalledProcessError` if the child exits
        with a non-zero status
    :param capture_output: capture standard output and standard error (both set
        to :data:`subprocess.PIPE`); they are returned in the result
    :param input: data sent to the child's standard input, which is then closed
        (``str`` in text mode, bytes otherwise)
    :param stop_event: an extra event that stops the child when set, like a
        cancellation of the job; the current job (if any) is watched as well
    :param popen_kwargs: passed on to :class:`subprocess.Popen` (``cwd``, ``env``,
        ``text``, ``stdout``, ``start_new_session`` …)
    :return: the :class:`subprocess.CompletedProcess`, with ``stdout`` and
        ``stderr`` set when they were captured
    :raises ~quiv.JobCancelledError: if the job was cancelled or ``stop_event``
        was set before the child exited
    :raises subprocess.TimeoutExpired: if ``timeout`` expired
    :raises subprocess.CalledProcessError: if ``check`` is true and the child
        exited with a non-zero status
    :raises ~quiv.ConfigurationError: for a bad parameter value or combination
        (before any process is started)
    :raises OSError: if the program cannot be started, as for :class:`subprocess.Popen`
    """
    timeout_seconds = None if timeout is None else _seconds("timeout", timeout)
    grace = _seconds("kill_grace", kill_grace)
    for name, flag in (("check", check), ("capture_output", capture_output)):
        if not isinstance(flag, bool):
            raise ConfigurationError.bad_value(name, flag, "a bool")
    if stop_event is not None and not isinstance(stop_event, threading.Event):
        raise ConfigurationError.bad_value("stop_event", stop_event, "a threading.Event or None")
    if capture_output:
        if popen_kwargs.get("stdout") is not None or popen_kwargs.get("stderr") is not None:
            raise ConfigurationError("stdout and stderr cannot be used with capture_output=True")
        popen_kwargs["stdout"] = popen_kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        if popen_kwargs.get("stdin") is not None:
            raise ConfigurationError("stdin and input cannot both be given")
        _check_input(input, popen_kwargs)
        popen_kwargs["stdin"] = subprocess.PIPE

    job = current_job()
    if stop_event is not None and job is not None and stop_event is job.stop_event:
        stop_event = None  # the job's own event: watched through the job, without polling
    message = _stop_message(job, stop_event)
    if message is not None:
        raise JobCancelledError(message)

    group = _leads_new_group(popen_kwargs)
    with subprocess.Popen(args, **popen_kwargs) as proc:
        supervisor = _Supervisor(proc, job, stop_event, timeout_seconds, grace, group)
        try:
            stdout, stderr = supervisor.run(input)
        except BaseException:
            # Whatever went wrong (KeyboardInterrupt included), leave no child
            # behind; Popen.__exit__ reaps it.
            supervisor.kill_now()
            raise
        returncode = proc.returncode
        assert returncode is not None
    if supervisor.stop_kind == _CANCELLED:
        raise JobCancelledError(supervisor.stop_message)
    if supervisor.stop_kind == _TIMED_OUT:
        assert timeout_seconds is not None
        raise subprocess.TimeoutExpired(proc.args, timeout_seconds, output=stdout, stderr=stderr)
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, proc.args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(proc.args, returncode, stdout, stderr)


# -- parameters ---------------------------------------------------------------


def _seconds(name: str, value: object) -> float:
    expected = "a finite number of seconds >= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError.bad_value(name, value, expected)
    try:
        seconds = float(value)
    except (OverflowError, ValueError):
        raise ConfigurationError.bad_value(name, value, expected) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError.bad_value(name, value, expected)
    return seconds


def _check_input(value: object, popen_kwargs: dict[str, Any]) -> None:
    text_mode = any(
        popen_kwargs.get(key) for key in ("text", "universal_newlines", "encoding", "errors")
    )
    if text_mode and not isinstance(value, str):
        raise ConfigurationError(f"input must be a str in text mode, got {reprlib.repr(value)}")
    if not text_mode and not isinstance(value, (bytes, bytearray, memoryview)):
        raise ConfigurationError(
            f"input must be bytes (pass text=True to send a str), got {reprlib.repr(value)}"
        )


def _leads_new_group(popen_kwargs: dict[str, Any]) -> bool:
    if sys.platform == "win32":
        return False
    return bool(popen_kwargs.get("start_new_session")) or popen_kwargs.get("process_group") == 0


def _stop_message(job: JobContext | None, stop_event: threading.Event | None) -> str | None:
    """Why the child must stop now, or ``None`` if nothing asks for it."""
    if job is not None and job.stop_event.is_set():
        return job.cancel_reason or "job cancelled"
    if stop_event is not None and stop_event.is_set():
        return "stop_event was set"
    return None


# -- waiting for the child ------------------------------------------------------


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


class _Supervisor:
    """Feed and read the pipes, watch stop requests and the deadline, stop the child."""

    def __init__(
        self,
        proc: subprocess.Popen[Any],
        job: JobContext | None,
        stop_event: threading.Event | None,
        timeout: float | None,
        kill_grace: float,
        group: bool,
    ) -> None:
        self._proc = proc
        self._job = job
        self._stop_event = stop_event
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._kill_grace = kill_grace
        self._group = group
        self._pidfd = -1
        self._kill_at: float | None = None
        self._killed = False
        #: ``None`` while the child may run, else :data:`_CANCELLED` or :data:`_TIMED_OUT`
        self.stop_kind: str | None = None
        #: the cancel reason, for :class:`~quiv.JobCancelledError`
        self.stop_message = ""

    def run(self, input: _Input | None) -> tuple[Any, Any]:
        """Wait until the child is gone; return ``(stdout, stderr)``.

        They are decoded in text mode, except after a stop, where they are bytes
        (as in :class:`subprocess.TimeoutExpired`). The child is reaped.
        """
        pidfd = _open_pidfd(self._proc.pid)
        if pidfd < 0:
            return self._run_polling(input)
        self._pidfd = pidfd
        try:
            waker = _Waker()
            unregister: Callable[[], None] = _noop
            try:
                if self._job is not None:
                    unregister = self._job._on_cancel(waker)
                return self._run_pidfd(input, waker)
            finally:
                unregister()
                waker.close()
        finally:
            self._pidfd = -1
            os.close(pidfd)

    def kill_now(self) -> None:
        """Kill the child without waiting (an unexpected error is unwinding)."""
        with contextlib.suppress(OSError):
            self._kill()

    # -- signals

    def _signal(self, sig: int) -> None:
        if self._group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)
        elif self._pidfd >= 0:
            # Only this thread reaps the child, and only after its last signal:
            # the pidfd always names the right process.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)
        else:
            self._proc.send_signal(sig)

    def _kill(self) -> None:
        self._killed = True
        if sys.platform == "win32":
            self._proc.kill()
        else:
            self._signal(signal.SIGKILL)

    # -- stop requests and deadlines

    def _check(self, now: float) -> None:
        """Start a stop, or escalate it to a kill, when one is due."""
        if self.stop_kind is None:
            message = _stop_message(self._job, self._stop_event)
            if message is not None:
                self._begin_stop(_CANCELLED, message, now)
            elif self._deadline is not None and now >= self._deadline:
                self._begin_stop(_TIMED_OUT, "", now)
        elif not self._killed and self._kill_at is not None and now >= self._kill_at:
            self._kill()

    def _begin_stop(self, kind: str, message: str, now: float) -> None:
        self.stop_kind = kind
        self.stop_message = message
        if sys.platform == "win32" or self._kill_grace == 0:
            self._kill()
        else:
            self._signal(signal.SIGTERM)
            self._kill_at = now + self._kill_grace

    def _wait_time(self, now: float, *, polling: bool) -> float | None:
        """How long the next wait may last before something falls due."""
        due: list[float] = []
        if self.stop_kind is None:
            if self._deadline is not None:
                due.append(self._deadline - now)
            if self._stop_event is not None:
                due.append(_POLL_INTERVAL)
        elif not self._killed and self._kill_at is not None:
            due.append(self._kill_at - now)
        if polling:
            due.append(_POLL_INTERVAL)
        return max(0.0, min(due)) if due else None

    # -- Linux: one poll() over the pipes, the pidfd and the wake-up pipe

    def _run_pidfd(self, input: _Input | None, waker: _Waker) -> tuple[Any, Any]:
        proc = self._proc
        out_fd = -1 if proc.stdout is None else proc.stdout.fileno()
        err_fd = -1 if proc.stderr is None else proc.stderr.fileno()
        chunks: dict[int, list[bytes]] = {fd: [] for fd in (out_fd, err_fd) if fd >= 0}
        with selectors.PollSelector() as selector:
            pending = _start_input(proc, input)
            offset = 0
            pipes: set[int] = set(chunks)
            if pending is not None:
                assert proc.stdin is not None
                selector.register(proc.stdin, selectors.EVENT_WRITE)
                pipes.add(proc.stdin.fileno())
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    selector.register(stream, selectors.EVENT_READ)
            selector.register(self._pidfd, selectors.EVENT_READ)
            selector.register(waker.read_fd, selectors.EVENT_READ)
            exited = False
            while not (exited and not pipes):
                now = time.monotonic()
                self._check(now)
                if self.stop_kind is not None:
                    if proc.stdin is not None and not proc.stdin.closed:
                        _close(selector, pipes, proc.stdin)
                    if exited:
                        break  # do not wait for grandchildren that hold the pipes
                for key, _ in selector.select(self._wait_time(now, polling=False)):
                    if key.fd == self._pidfd:
                        exited = True  # reaped below, once no more signals are sent
                        selector.unregister(key.fileobj)
                    elif key.fd == waker.read_fd:
                        selector.unregister(key.fileobj)  # _check() reads the job's state
                    elif key.fd in chunks:
                        data = os.read(key.fd, _READ_SIZE)
                        if data:
                            chunks[key.fd].append(data)
                        else:
                            _close(selector, pipes, key.fileobj)
                    else:  # stdin
                        assert pending is not None
                        try:
                            offset += os.write(key.fd, pending[offset : offset + _PIPE_BUF])
                        except BrokenPipeError:
                            offset = len(pending)
                        if offset >= len(pending):
                            _close(selector, pipes, key.fileobj)
            if self.stop_kind is not None:
                _drain(selector, chunks, pipes)
        proc.wait()  # the child has exited: this only reaps it
        decode = self.stop_kind is None
        return (
            _joined(proc.stdout, chunks.get(out_fd), decode=decode),
            _joined(proc.stderr, chunks.get(err_fd), decode=decode),
        )

    # -- elsewhere: communicate() in short slices

    def _run_polling(self, input: _Input | None) -> tuple[Any, Any]:
        proc = self._proc
        pending = input
        partial: tuple[Any, Any] = (None, None)
        while True:
            now = time.monotonic()
            self._check(now)
            if self.stop_kind is not None and proc.poll() is not None:
                break
            try:
                output: tuple[Any, Any] = proc.communicate(
                    pending, timeout=self._wait_time(now, polling=True)
                )
            except subprocess.TimeoutExpired as exc:
                pending = None
                partial = (exc.output, exc.stderr)
                continue
            return output if self.stop_kind is None else _encoded(output, proc)
        # Stopped and reaped: collect what the pipes hold, without waiting for
        # grandchildren that keep them open.
        try:
            output = proc.communicate(timeout=_DRAIN_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            output = (exc.output, exc.stderr)
        if output == (None, None):
            output = partial
        return _encoded(output, proc)


_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)


def _noop() -> None:
    pass


def _open_pidfd(pid: int) -> int:
    """Return a pidfd for *pid*, or -1 where the platform offers none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or not hasattr(signal, "pidfd_send_signal"):
        return -1
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # ENOSYS (Linux < 5.3), EPERM (seccomp), ESRCH (auto-reaped child)
        return -1
    return fd


def _start_input(proc: subprocess.Popen[Any], input: _Input | None) -> memoryview | None:
    """Prepare stdin as :meth:`~subprocess.Popen.communicate` does.

    Return the bytes to send, or ``None`` after closing stdin if there are none.
    """
    if proc.stdin is None:
        return None
    if not input:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        return None
    if isinstance(input, str):
        assert isinstance(proc.stdin, io.TextIOWrapper)
        return memoryview(input.encode(proc.stdin.encoding, proc.stdin.errors or "strict"))
    return memoryview(input).cast("B")


def _close(selector: selectors.BaseSelector, pipes: set[int], stream: Any) -> None:
    pipes.discard(stream.fileno())
    selector.unregister(stream)
    with contextlib.suppress(BrokenPipeError):
        stream.close()


def _drain(
    selector: selectors.BaseSelector, chunks: dict[int, list[bytes]], pipes: set[int]
) -> None:
    """Read the output already waiting in the pipes, without waiting for more."""
    budget = _DRAIN_LIMIT
    while budget > 0:
        ready = [key for key, _ in selector.select(0) if key.fd in chunks]
        if not ready:
            return
        for key in ready:
            data = os.read(key.fd, _READ_SIZE)
            if data:
                chunks[key.fd].append(data)
                budget -= len(data)
            else:
                _close(selector, pipes, key.fileobj)


def _joined(stream: IO[Any] | None, chunks: list[bytes] | None, *, decode: bool) -> Any:
    if stream is None or chunks is None:
        return None
    data = b"".join(chunks)
    if decode and isinstance(stream, io.TextIOWrapper):
        # as communicate() does in text mode: universal newlines
        text = data.decode(stream.encoding, stream.errors or "strict")
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return data


def _encoded(output: tuple[Any, Any], proc: subprocess.Popen[Any]) -> tuple[Any, Any]:
    """Output of a stopped child as bytes, like :class:`subprocess.TimeoutExpired`'s."""
    result: list[Any] = []
    for data, stream in zip(output, (proc.stdout, proc.stderr), strict=True):
        if isinstance(data, str) and isinstance(stream, io.TextIOWrapper):
            data = data.encode(stream.encoding, stream.errors or "strict")
        result.append(data)
    return result[0], result[1]
