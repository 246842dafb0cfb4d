"""Which process owns the rows of a database file, and whether that process still runs.

Every :class:`~quiv._store.SQLiteStore` opened on a file path is an *owner*:

* an **owner id**, 128 random bits drawn when the store starts, written into
  every task and job row it stores (one constant per store, so it costs the
  writer nothing per row) and into a row of the ``owners`` table with the
  process id, the host name and the start time (for messages);
* a **lock file** beside the database, ``<db>-owner-<owner id>``, on which the
  store holds an exclusive advisory lock for as long as it is open.

**An owner is live exactly while its lock is held.** The kernel drops the lock
when the process ends, however it ends (``os._exit``, ``SIGKILL``, a crash,
the machine losing power), so a dead owner can never look alive; and the id is
never drawn twice, so a new process that is given a dead one's pid does not
hold the dead owner's lock: unlike ``os.kill(pid, 0)``, pid reuse cannot keep
a dead owner looking alive, nor make a live one look dead. A missing lock file
means a dead owner too (it is removed when the owner closes, or by whoever
finds it dead). Any other doubt (a lock file that cannot be opened, for
instance another user's) counts as alive: a live process's jobs are never
reaped on a guess.

The lock is ``flock`` (POSIX) or ``msvcrt.locking`` (Windows), both held by
the open file, not the process: two stores of one process on the same file
each hold their own lock, and closing one leaves the other's (a POSIX
``fcntl`` lock would be dropped by closing *any* descriptor of the file). A
child made by ``os.fork`` inherits the descriptor, and with it the lock, which
would keep a dead parent looking alive as long as the child ran: the child
closes its copies right after the fork (without unlocking, which would release
the parent's lock too).

Advisory locks are reliable between processes of one host (containers on one
host included, whatever their pid namespaces). That is also the only sharing
SQLite's WAL mode supports, since it needs shared memory.
"""

from __future__ import annotations

import errno
import os
import sys
import weakref
from typing import Protocol

__all__ = (
    "Forgettable",
    "OwnerLock",
    "held_until_fork",
    "lock_path",
    "new_owner_id",
    "owner_alive",
    "released",
    "try_lock",
)

_LOCK_SUFFIX = "-owner-"


def new_owner_id() -> str:
    """A fresh owner id: 32 hex digits from :func:`os.urandom` (never pooled, fork-safe)."""
    return os.urandom(16).hex()


def lock_path(db_path: str, owner_id: str) -> str:
    """The lock file of owner *owner_id* of the database *db_path*."""
    return f"{db_path}{_LOCK_SUFFIX}{owner_id}"


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        """Take an exclusive lock on *fd* if nobody holds one; never waits."""
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        """Take an exclusive lock on *fd* if nobody holds one; never waits."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True


#: locks held by this process, closed in a forked child (see the module docstring)
class Forgettable(Protocol):
    """A lock held by an open descriptor, which a forked child must close, not unlock."""

    def _forget(self) -> None: ...


_held: weakref.WeakSet[Forgettable] = weakref.WeakSet()


def held_until_fork(lock: Forgettable) -> None:
    """Have a forked child call ``lock._forget()``: the lock stays its parent's."""
    _held.add(lock)


def released(lock: Forgettable) -> None:
    """*lock* was released: nothing to do for it after a fork."""
    _held.discard(lock)


class OwnerLock:
    """The lock that says this store's owner is alive; see the module docstring."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        _held.add(self)

    @classmethod
    def acquire(cls, db_path: str, owner_id: str) -> OwnerLock:
        """Create and lock the lock file of *owner_id* (a fresh id, so the file is new).

        The file holds the process id, for people. It gets the read and
        write bits of the database file itself (whatever the umask), so that
        whoever may read the database may test the lock, and nobody else.

        :raises OSError: if the file cannot be created or locked
        """
        path = lock_path(db_path, owner_id)
        mode = os.stat(db_path).st_mode & 0o666
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            if sys.platform != "win32":
                os.fchmod(fd, mode)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.lseek(fd, 0, os.SEEK_SET)
            if not try_lock(fd):  # nobody else knows the name yet
                raise OSError(errno.EWOULDBLOCK, "the owner lock is taken", path)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        return cls(path, fd)

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (a second call does nothing)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held.discard(self)
        os.close(fd)
        _unlink(self.path)

    def _forget(self) -> None:
        """In a forked child: close the inherited descriptor, keep the parent's lock and file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def owner_alive(db_path: str, owner_id: str) -> bool:
    """Whether owner *owner_id* of *db_path* still holds its lock.

    A dead owner's lock file is removed on the way. Never raises: what
    cannot be checked counts as alive.
    """
    path = lock_path(db_path, owner_id)
    try:
        fd = os.open(path, os.O_RDONLY if sys.platform != "win32" else os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        alive = not try_lock(fd)
    except OSError:
        alive = True
    finally:
        os.close(fd)
    if not alive:
        _unlink(path)  # the dead owner is gone for good: its id is never drawn again
    return alive


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already, or (Windows) still open elsewhere


def _after_fork_in_child() -> None:
    for lock in list(_held):
        lock._forget()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
