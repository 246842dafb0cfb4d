"""The runner lock: which process of a host runs the recurring schedules.

An exclusive ``flock`` (``msvcrt.locking`` on Windows) on a lock file beside
the database, ``<db_path>-runner.lock``. The kernel drops it when its holder
ends, however it ends (``SIGKILL`` included), so a dead runner never keeps
the role. It is taken when the scheduler starts, i.e. after a pre-fork
server forked its workers, with a descriptor of this process's own: a lock
inherited through ``fork`` would make every child a runner, so a forked
child closes its copy (without unlocking, which would drop the parent's lock).

The processes that do not hold it (standbys) try again every
:data:`POLL_SECONDS`, on their loop: a non-blocking attempt costs one
system call and needs no thread (a thread blocked in ``flock`` could not be
woken to shut down). The lock file holds the runner's pid, for people.
"""

from __future__ import annotations

import os
import sys
from typing import Final

from .._store._owners import held_until_fork, released, try_lock

__all__ = ("HOST", "POLL_SECONDS", "SINGLE", "RunnerLock", "runner_lock_path")

#: how often a standby tries to become the runner (the failover time, at most)
POLL_SECONDS: Final = 0.2
#: the lock holder's mode: one of several host-mode processes
HOST: Final = "host"
#: the lock holder's mode: a scheduler without host mode, the only one on its database
SINGLE: Final = "single"


def runner_lock_path(db_path: str) -> str:
    """The runner lock file of the host-mode database *db_path*."""
    return f"{db_path}-runner.lock"


class RunnerLock:
    """This process's attempt at the runner role of one database."""

    def __init__(self, db_path: str) -> None:
        self.path = runner_lock_path(db_path)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags, 0o600)
        self.held = False
        held_until_fork(self)

    def try_acquire(self, mode: str = HOST) -> bool:
        """Take the role if nobody holds it; ``True`` if this process holds it now.

        :param mode: written into the file with the pid: :data:`HOST` for a
            host-mode scheduler, :data:`SINGLE` for one that must be the only
            process on its database

        :raises OSError: if the file system cannot lock (then no process can
            be told to be the only runner)
        """
        if self.held:
            return True
        fd = self._fd
        if fd is None:
            return False
        if not try_lock(fd):
            return False
        self.held = True
        if sys.platform != "win32":  # (Windows locks the byte the pid would be written to)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {mode}\n".encode(), 0)
            except OSError:
                pass  # the pid is for people; the lock is what counts
        return True

    def holder(self) -> tuple[str, str]:
        """``(pid, mode)`` of the process that holds the lock, as its file says (``"?"`` if unknown)."""
        try:
            with open(self.path, encoding="ascii", errors="replace") as file:
                words = file.read(64).split()
        except OSError:
            words = []
        return (words[0] if words else "?", words[1] if len(words) > 1 else "?")

    def close(self) -> None:
        """Give the role up (if held) and close the file; a second call does nothing."""
        fd, self._fd = self._fd, None
        self.held = False
        released(self)
        if fd is not None:
            os.close(fd)

    def _forget(self) -> None:
        # in a forked child: the parent's lock is the parent's
        fd, self._fd = self._fd, None
        self.held = False
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
