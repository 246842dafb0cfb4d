"""The public :func:`run_subprocess`: check its parameters, start the child, report the outcome."""

from __future__ import annotations

import math
import numbers
import reprlib
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._checks import check_bool
from .._context import current_job
from .._errors import ConfigurationError, JobCancelledError
from ._pipes import Input
from ._stopper import CANCELLED, TIMED_OUT, Stopper, stop_message
from ._wait import wait_for_exit

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath

__all__ = ("run_subprocess",)


def run_subprocess(
    args: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    timeout: float | None = None,
    kill_grace: float = 5.0,
    check: bool = False,
    capture_output: bool = False,
    input: Input | None = None,
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
    :func:`anyio.open_process`) instead; calling this function from an async
    handler would block its event loop. The job's cancel scope cancels
    anyio's call, which stops the child differently: anyio kills it at once
    (``SIGKILL``; ``TerminateProcess`` on Windows), with no ``SIGTERM`` and no
    grace period, waits for it to exit and lets the cancellation go on. Only
    the direct child is killed, even in a new session. A process from
    ``async with await anyio.open_process(...)`` is killed the same way when
    a cancellation leaves the block; one opened without ``async with`` is
    not stopped at all. To give the child time to exit cleanly, terminate it
    yourself when the cancellation arrives (the "Subprocesses" section of
    the cancellation docs shows how).

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
    check_bool(check, "check")
    check_bool(capture_output, "capture_output")
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
    message = stop_message(job, stop_event)
    if message is not None:
        raise JobCancelledError(message)

    group = _leads_new_group(popen_kwargs)
    with subprocess.Popen(args, **popen_kwargs) as proc:
        stopper = Stopper(proc, job, stop_event, timeout_seconds, grace, group)
        try:
            stdout, stderr = wait_for_exit(stopper, input)
        except BaseException:
            # Whatever went wrong (KeyboardInterrupt included), leave no child
            # behind; Popen.__exit__ reaps it.
            stopper.kill_now()
            raise
        returncode = proc.returncode
        assert returncode is not None
    if stopper.stop_kind == CANCELLED:
        raise JobCancelledError(stopper.stop_message)
    if stopper.stop_kind == TIMED_OUT:
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
