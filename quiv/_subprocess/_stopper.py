"""When the child must stop, and stopping it: ``SIGTERM``, a grace period, ``SIGKILL``.

A :class:`Stopper` belongs to the job thread that waits for the child. The
waiting loops (:mod:`._wait`) call :meth:`Stopper.check` each time they wake
and sleep no longer than :meth:`Stopper.wait_time`; the stopper decides
whether a stop is due (the job was cancelled, ``stop_event`` was set, the
deadline passed) and whether it must escalate to a kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from .._context import JobContext

__all__ = ("CANCELLED", "POLL_INTERVAL", "TIMED_OUT", "Stopper", "stop_message")

#: How often stop requests are checked where they cannot wake the waiting thread:
#: a ``stop_event`` that is not the current job's own, and platforms without pidfd.
POLL_INTERVAL = 0.05
#: The kinds of stop (:attr:`Stopper.stop_kind`).
CANCELLED = "cancelled"
TIMED_OUT = "timed out"


def stop_message(job: JobContext | None, stop_event: threading.Event | None) -> str | None:
    """Why the child must stop now, or ``None`` if nothing asks for it."""
    if job is not None and job.stop_event.is_set():
        return job.cancel_reason or "job cancelled"
    if stop_event is not None and stop_event.is_set():
        return "stop_event was set"
    return None


class Stopper:
    """Watch stop requests and the deadline for one child; signal it when one falls due."""

    def __init__(
        self,
        proc: subprocess.Popen[Any],
        job: JobContext | None,
        stop_event: threading.Event | None,
        timeout: float | None,
        kill_grace: float,
        group: bool,
    ) -> None:
        self.proc = proc
        self.job = job
        self._stop_event = stop_event
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._kill_grace = kill_grace
        self._group = group
        #: a pidfd of the child while the waiting loop holds one, else -1
        self.pidfd = -1
        self._kill_at: float | None = None
        self._killed = False
        #: ``None`` while the child may run, else :data:`CANCELLED` or :data:`TIMED_OUT`
        self.stop_kind: str | None = None
        #: the cancel reason, for :class:`~quiv.JobCancelledError`
        self.stop_message = ""

    def kill_now(self) -> None:
        """Kill the child without waiting (an unexpected error is unwinding)."""
        with contextlib.suppress(OSError):
            self._kill()

    def check(self, now: float) -> None:
        """Start a stop, or escalate it to a kill, when one is due."""
        if self.stop_kind is None:
            message = stop_message(self.job, self._stop_event)
            if message is not None:
                self._begin_stop(CANCELLED, message, now)
            elif self._deadline is not None and now >= self._deadline:
                self._begin_stop(TIMED_OUT, "", now)
        elif not self._killed and self._kill_at is not None and now >= self._kill_at:
            self._kill()

    def wait_time(self, now: float, *, polling: bool) -> float | None:
        """How long the next wait may last before something falls due."""
        due: list[float] = []
        if self.stop_kind is None:
            if self._deadline is not None:
                due.append(self._deadline - now)
            if self._stop_event is not None:
                due.append(POLL_INTERVAL)
        elif not self._killed and self._kill_at is not None:
            due.append(self._kill_at - now)
        if polling:
            due.append(POLL_INTERVAL)
        return max(0.0, min(due)) if due else None

    def _begin_stop(self, kind: str, message: str, now: float) -> None:
        self.stop_kind = kind
        self.stop_message = message
        if sys.platform == "win32" or self._kill_grace == 0:
            self._kill()
        else:
            self._signal(signal.SIGTERM)
            self._kill_at = now + self._kill_grace

    def _kill(self) -> None:
        self._killed = True
        if sys.platform == "win32":
            self.proc.kill()
        else:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self._group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        elif self.pidfd >= 0:
            # Only the waiting thread reaps the child, and only after its last
            # signal: the pidfd always names the right process.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)
        else:
            self.proc.send_signal(sig)
