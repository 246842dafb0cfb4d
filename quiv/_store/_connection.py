"""The connection seam: one small async interface over SQLite, on asyncio and trio.

aiosqlite only runs under asyncio (under trio it fails with "unrecognized
yield message"), so :func:`open_connection` picks an implementation from the
running async library:

* asyncio: :class:`AiosqliteConnection`, aiosqlite's own connection thread;
* anything else (trio): :class:`ThreadConnection`, the stdlib :mod:`sqlite3`
  driven through :func:`anyio.to_thread.run_sync` with a private
  ``CapacityLimiter(1)``, so exactly one call touches the connection at a time.

Everything above this module (schema, SQL, batching) is shared. Errors are the
driver's own (:class:`sqlite3.Error` and friends); the store translates them.
Connections open in autocommit mode: transactions are explicit, through
:meth:`Connection.transaction`.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import aiosqlite
import anyio

from .._backends import ASYNCIO, current_backend

__all__ = (
    "AiosqliteConnection",
    "Connection",
    "Row",
    "ThreadConnection",
    "open_connection",
)

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any]

#: how long SQLite waits for another process's lock before raising "database is locked"
BUSY_TIMEOUT_MS = 5000


class Connection(ABC):
    """An async SQLite connection, used by one store from one event loop.

    Calls are not interleaved by the connection itself: the store serialises
    its use (one transaction or query at a time).
    """

    def __init__(self) -> None:
        #: transactions committed through :meth:`transaction` (for tests and benchmarks)
        self.commits = 0

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement and return its row count (``-1`` if not applicable)."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one query and return every row as a tuple."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection; a second call does nothing."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one write transaction: commit on success, roll back on error.

        The rollback runs shielded from cancellation; its own failure (when
        ``BEGIN`` failed, or a failed ``COMMIT`` already ended the
        transaction) is ignored so the original error propagates.
        """
        try:
            # inside the try: aiosqlite may still run BEGIN after a cancelled await
            await self.execute("BEGIN IMMEDIATE")
            yield
            await self.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self.execute("ROLLBACK")
                except Exception:
                    pass  # the original error matters more
            raise
        self.commits += 1


def _rowcount(conn: sqlite3.Connection, sql: str, params: Params) -> int:
    cursor = conn.execute(sql, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _executemany(conn: sqlite3.Connection, sql: str, rows: Iterable[Params]) -> None:
    conn.executemany(sql, rows).close()


def _fetchall(conn: sqlite3.Connection, sql: str, params: Params) -> list[Row]:
    cursor = conn.execute(sql, params)
    try:
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}").close()
    except BaseException:
        conn.close()
        raise
    return conn


class ThreadConnection(Connection):
    """The stdlib :mod:`sqlite3` in worker threads, one call at a time (trio's choice).

    Each call hops to an anyio worker thread through a private
    ``CapacityLimiter(1)``; the connection is opened with
    ``check_same_thread=False`` because anyio's pooled threads are not stable.
    Works on any anyio backend.
    """

    def __init__(self, conn: sqlite3.Connection, limiter: anyio.CapacityLimiter) -> None:
        super().__init__()
        self._conn: sqlite3.Connection | None = conn
        self._limiter = limiter

    @classmethod
    async def open(cls, path: str) -> ThreadConnection:
        """Open *path* in a worker thread.

        :param path: a file path (or ``":memory:"``)
        :raises sqlite3.Error: if SQLite cannot open it
        """
        limiter = anyio.CapacityLimiter(1)
        with anyio.CancelScope(shield=True):  # see AiosqliteConnection.open
            conn = await anyio.to_thread.run_sync(_connect, path, limiter=limiter)
        self = cls(conn, limiter)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        return self

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._conn

    async def _call(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._call(partial(_rowcount, self._live(), sql, params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._call(partial(_executemany, self._live(), sql, rows))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._call(partial(_fetchall, self._live(), sql, params))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await self._call(conn.close)


class AiosqliteConnection(Connection):
    """aiosqlite's connection (asyncio only).

    aiosqlite runs each connection on its own thread. That thread is made a
    daemon so a process that never closes the store can still exit (aiosqlite
    creates it non-daemonic, which would block interpreter shutdown forever).
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__()
        self._conn: aiosqlite.Connection | None = conn

    @classmethod
    async def open(cls, path: str) -> AiosqliteConnection:
        """Open *path* on a new aiosqlite connection thread.

        :param path: a file path (or ``":memory:"``)
        :raises sqlite3.Error: if SQLite cannot open it
        """
        pending = aiosqlite.connect(path, isolation_level=None)
        # aiosqlite has no public way to make its connection thread a daemon;
        # its (not yet started) thread is the private ``_thread``.
        # tests/test_library_internals.py fails if that changes.
        thread = getattr(pending, "_thread", None)
        if isinstance(thread, threading.Thread) and not thread.is_alive():
            thread.daemon = True
        # Shielded: a cancel that lands while the thread opens the file would
        # drop the open connection unclosed. Opening is quick; the cancel
        # takes effect just after, and the connection is closed then.
        with anyio.CancelScope(shield=True):
            conn = await pending
        self = cls(conn)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            await self.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        return self

    def _live(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._live().execute(sql, params) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._live().executemany(sql, rows):
            pass

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        rows = await self._live().execute_fetchall(sql, params)
        return [tuple(row) for row in rows]

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()


async def open_connection(path: str) -> Connection:
    """Open *path* with the implementation that suits the running async library.

    :param path: a file path (or ``":memory:"``)
    :raises sqlite3.Error: if SQLite cannot open it
    """
    if current_backend() is ASYNCIO:
        return await AiosqliteConnection.open(path)
    return await ThreadConnection.open(path)
