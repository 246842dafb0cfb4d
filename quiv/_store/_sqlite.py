"""SQLiteStore: tasks and job history in one SQLite file, on asyncio and trio.

It is longer than most: opening the file (private temporary or persistent, with
crash recovery of dead owners' jobs) and answering every query share one
connection's lifecycle; the SQL text is in :mod:`._schema`, batching in
:mod:`._writer`, owners in :mod:`._owners`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._errors import StoreError
from .._models import Job, Task
from .._states import NEW, RUNNING, STARTING, STOPPED, STOPPING
from .._typing import Logger
from ._base import JobQuery, Live, Store, job_record, task_record
from ._connection import Connection, Row, open_connection
from ._files import TempDatabase, create_private_file
from ._owners import OwnerLock, lock_path, new_owner_id, owner_alive
from ._records import (
    from_micros,
    job_from_row,
    job_to_row,
    task_from_row,
    task_to_row,
    to_micros,
    with_data,
)
from ._retention import check_retention, cutoff_micros, prune_interval
from ._schema import (
    CLAIM_FIRE,
    COUNT_JOBS,
    DELETE_OWNER,
    DELETE_OWNER_COMMANDS,
    DELETE_OWNER_TASKS,
    DELETE_TASK,
    FINAL_STATUSES,
    INSERT_OWNER,
    PRUNE_CHUNK,
    PRUNE_FIRES,
    REAP_JOBS,
    REAP_UNOWNED_JOBS,
    SELECT_JOB,
    SELECT_LAST_FIRES,
    SELECT_OWNERS,
    SELECT_TASKS,
    SET_LAST_FIRE,
    UPSERT_JOB,
    UPSERT_TASK,
    create_schema,
    jobs_query,
    prune_statement,
    scrub_free_pages,
)
from ._writer import BatchWriter, JobRows, TaskRows

__all__ = ("SQLiteStore",)

T = TypeVar("T")
ConnectionFactory = Callable[[str], Awaitable[Connection]]

#: rows handed to one ``executemany`` call (conversion yields to the loop between chunks)
WRITE_CHUNK = 2000
_DRIVER_ERRORS = (sqlite3.Error, OSError, ValueError, TypeError)


class SQLiteStore(Store):
    """Tasks and job history in SQLite, written in batches by one writer task.

    Writes (``put_*``) only queue a row; the writer commits everything queued
    in one transaction per batch (a job updated three times in a row is
    written once). Reads wait for earlier writes first. Connections use
    aiosqlite under asyncio and the stdlib :mod:`sqlite3` in a worker thread
    otherwise (trio); WAL journal, ``synchronous=NORMAL``.

    Finished jobs whose ``ended_at`` is older than the retention are pruned
    every ``min(max(retention / 2, 1), 60)`` seconds (and once at start);
    with a retention of ``0`` every finished job goes at the next pass, with
    ``inf`` none ever does. Scheduled and running jobs are never pruned.

    Handler arguments are never written, in any form: a task read back has
    empty ``args`` and ``kwargs``.

    **Results and progress** are the user's data. They are kept in memory,
    by job id, for as long as the job's record (pruned with it), and jobs are
    read back with them as they were (not as JSON made them). They reach
    the file only when it is one the user named (``db_path``, not the
    temporary database): a result whose ``result_state`` is ``stored``, and
    a progress payload that JSON can represent in at most
    :data:`~quiv._store._records.PROGRESS_CHARS` characters, as JSON text.
    A store opened on that file later reads them back from it.

    **Crash recovery.** On a file path, the store registers itself as the
    *owner* of the rows it writes (a fresh random id in every row, a row in
    the ``owners`` table, and an advisory lock held on
    ``<db_path>-owner-<id>`` while it is open; see :mod:`quiv._store._owners`
    for why a lock and not a pid check). At start it looks for owners whose
    lock nobody holds any more, i.e. processes that ended without closing
    their store (killed, crashed, ``os._exit``): their jobs still recorded
    ``scheduled`` or ``running`` are recorded ``cancelled``, ended now, with
    the message ``"process <pid> ended while the job was running"`` (or
    ``scheduled``); their task rows are deleted (schedules are declared again
    by the process that starts next; a task row is only a record of a live
    schedule); their job history stays. A live process's rows are never
    touched, however many processes share the file. A clean :meth:`aclose`
    deletes the store's own task rows and owner row. The temporary database,
    ``":memory:"`` and ``file:`` URIs do no crash recovery.

    :param db_path: ``None`` for a private temporary database (a fresh 0700
        directory, file mode 0600) removed by :meth:`aclose`, or at garbage
        collection or interpreter exit if :meth:`aclose` never ran; otherwise
        a file path kept across runs (created 0600 if missing)
    :param history_retention_seconds: how long finished jobs are kept
    :param logger: where write failures are reported (default ``quiv``)
    :param connection_factory: opens the connection (a seam for tests);
        the default picks aiosqlite or :mod:`sqlite3` by async library
    :param host_mode: the file is shared by the processes of a host: the
        records of queued jobs are written too (a few hundred milliseconds
        after they are queued), not only once the jobs start
    :raises ConfigurationError: if the retention is not a number >= 0
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        history_retention_seconds: float = 86400,
        logger: Logger | None = None,
        connection_factory: ConnectionFactory | None = None,
        host_mode: bool = False,
    ) -> None:
        self._retention = check_retention(history_retention_seconds)
        self._db_path = None if db_path is None else os.fspath(db_path)
        self._logger: Logger = logger if logger is not None else logging.getLogger("quiv")
        self._connect = connection_factory if connection_factory is not None else open_connection
        self._writer = BatchWriter(self._write_batch, self._logger)
        # other processes read the file: they see queued jobs too
        self._writer.queued_rows = host_mode
        self._lock = anyio.Lock()
        self._conn: Connection | None = None
        self._temp: TempDatabase | None = None
        self._state = NEW  # -> starting -> running (open) -> stopping -> stopped
        #: written into every row; drawn at start, so a store made before a fork differs after
        self._owner = ""
        self._owner_lock: OwnerLock | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        #: job id -> (ended_at in microseconds or None, result, progress), for jobs with either
        self._data: dict[str, tuple[int | None, Any, dict[str, Any] | None]] = {}

    @property
    def path(self) -> str | None:
        """The database file (``None`` until a temporary one is created)."""
        return self._temp.path if self._temp is not None else self._db_path

    @property
    def owner(self) -> str:
        """The owner id written into every row (``""`` before :meth:`start`)."""
        return self._owner

    @property
    def connection(self) -> Connection | None:
        """The open connection (``None`` before :meth:`start` and after :meth:`aclose`)."""
        return self._conn

    # -- lifecycle -------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        """Open the database, create the schema and start the writer and pruner.

        :param task_group: the scheduler's task group, which hosts the background work
        :raises StoreError: if the database cannot be opened or has an unknown schema
        """
        if self._state is not NEW:
            raise StoreError("the job store was started already")
        self._state = STARTING
        self._owner = new_owner_id()
        conn: Connection | None = None
        try:
            path = self._prepare_file()
            conn = await self._connect(path)
            if await create_schema(conn) == 1:
                await self._scrub(conn)
            if self._shared_file(path):
                await self._claim(conn, path)
        except BaseException as exc:
            self._state = STOPPED
            with anyio.CancelScope(shield=True):
                try:
                    if conn is not None:
                        await conn.close()
                finally:
                    self._release_owner()
                    self._remove_temp()
            if isinstance(exc, _DRIVER_ERRORS) and not isinstance(exc, StoreError):
                raise StoreError(f"cannot open the job store {self.path!r}: {exc}") from exc
            raise
        self._conn = conn
        self._state = RUNNING
        await task_group.start(self._background)

    def _prepare_file(self) -> str:
        if self._db_path is None:
            self._temp = TempDatabase(self)
            return self._temp.path
        if self._db_path != ":memory:" and not self._db_path.startswith("file:"):
            create_private_file(self._db_path)
        return self._db_path

    def _shared_file(self, path: str) -> bool:
        """Whether other processes may open *path* too: a file path, not a URI or temporary."""
        return self._temp is None and path != ":memory:" and not path.startswith("file:")

    async def _scrub(self, conn: Connection) -> None:
        # after a migration from version 1: the old task rows held argument strings
        try:
            await scrub_free_pages(conn)
        except _DRIVER_ERRORS as exc:
            self._logger.warning(
                "quiv store: could not rewrite %r after upgrading it; pages of the old"
                " tasks table may remain in the file until SQLite reuses them: %s",
                self.path,
                exc,
            )

    async def _claim(self, conn: Connection, path: str) -> None:
        """Register this store as an owner, then reap the rows of owners that are gone."""
        try:
            self._owner_lock = OwnerLock.acquire(path, self._owner)
        except OSError as exc:  # a file system without locks, say
            self._logger.warning(
                "quiv store: cannot lock %r, so this process cannot tell live processes"
                " sharing the file from dead ones; jobs a dead process left in flight"
                " stay as they are: %s",
                lock_path(path, self._owner),
                exc,
            )
            return
        now = to_micros(datetime.now(timezone.utc))
        dead = await self._dead_owners(conn, path)
        async with conn.transaction():
            await conn.execute(INSERT_OWNER, (self._owner, os.getpid(), _host(), now))
            reaped = await self._reap(conn, dead, now)
            unowned = await conn.execute(REAP_UNOWNED_JOBS, (now,))
        self._report_reaped(reaped)
        if unowned:
            self._logger.warning(
                "quiv store: %d jobs of an earlier quiv version were still recorded"
                " scheduled or running; they are recorded cancelled",
                unowned,
            )

    async def _dead_owners(self, conn: Connection, path: str) -> list[tuple[str, int]]:
        others = await conn.fetchall(SELECT_OWNERS, (self._owner,))
        return [(str(owner), int(pid)) for owner, pid in others if not owner_alive(path, owner)]

    @staticmethod
    async def _reap(
        conn: Connection, dead: list[tuple[str, int]], now: int | None
    ) -> list[tuple[int, int]]:
        """In a transaction: record the dead owners' jobs in flight cancelled, drop their rows."""
        reaped: list[tuple[int, int]] = []
        for owner, pid in dead:
            reaped.append((pid, await conn.execute(REAP_JOBS, (now, pid, owner))))
            await conn.execute(DELETE_OWNER_TASKS, (owner,))
            await conn.execute(DELETE_OWNER_COMMANDS, (owner,))
            await conn.execute(DELETE_OWNER, (owner,))
        return reaped

    async def reap_dead_owners(self) -> None:
        """Reap the rows of processes sharing the file that ended without closing.

        As at :meth:`start`; host mode calls it when a process becomes the
        runner, so the jobs a killed runner left in flight end at once (and
        the ``wait_for_job`` callers of other processes with them).

        :raises StoreError: if the store cannot
        """
        path = self.path
        if self._owner_lock is None or path is None:
            return
        try:
            async with self._lock:
                conn = self._live()
                dead = await self._dead_owners(conn, path)
                if not dead:
                    return
                now = to_micros(datetime.now(timezone.utc))
                async with conn.transaction():
                    reaped = await self._reap(conn, dead, now)
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"reaping the rows of ended processes failed: {exc}") from exc
        self._report_reaped(reaped)

    def _report_reaped(self, reaped: list[tuple[int, int]]) -> None:
        for pid, count in reaped:
            if count:
                self._logger.warning(
                    "quiv store: process %d ended while %d of its jobs were scheduled or"
                    " running; they are recorded cancelled",
                    pid,
                    count,
                )

    def _release_owner(self) -> None:
        lock, self._owner_lock = self._owner_lock, None
        if lock is not None:
            try:
                lock.release()
            except OSError as exc:
                self._logger.error("quiv store: releasing the owner lock failed: %s", exc)

    async def _disown(self, conn: Connection) -> None:
        """At a clean close: delete this store's task rows and owner row.

        Kept when records are unwritten, so the next start records them.
        """
        if self._owner_lock is None or not self._owner_lock.held or self._writer.pending_writes:
            return
        try:
            async with self._lock, conn.transaction():
                await conn.execute(DELETE_OWNER_TASKS, (self._owner,))
                await conn.execute(DELETE_OWNER, (self._owner,))
        except _DRIVER_ERRORS as exc:
            self._logger.warning(
                "quiv store: could not remove this process's rows at close; the next"
                " start removes them: %s",
                exc,
            )

    def _remove_temp(self) -> None:
        if self._temp is not None:
            self._temp.remove()

    async def _background(self, *, task_status: TaskStatus[None]) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    await tg.start(self._writer.run, name="quiv store writer")
                    if not math.isinf(self._retention):
                        tg.start_soon(self._prune_loop, name="quiv store pruning")
                    task_status.started()
        finally:
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop the background work, write what is queued, close, remove temp files.

        Shielded from cancellation. If the final write fails, the error is
        logged with the number of records lost. A second call does nothing.
        """
        if self._state in (STOPPING, STOPPED):
            self._remove_temp()
            return
        started = self._state is RUNNING
        self._state = STOPPING
        with anyio.CancelScope(shield=True):
            try:
                if started:
                    if self._scope is not None:
                        self._scope.cancel()
                    await self._stopped.wait()
                    # rows queued while the last batch was written get one more batch
                    while self._writer.pending_writes:
                        if not await self._writer.write_now():
                            self._logger.error(
                                "quiv store: closing with %d records unwritten; they are lost",
                                self._writer.pending_writes,
                            )
                            break
                    if self._conn is not None:
                        await self._disown(self._conn)
            finally:
                self._state = STOPPED
                self._data.clear()
                conn, self._conn = self._conn, None
                try:
                    if conn is not None:
                        await conn.close()
                except _DRIVER_ERRORS as exc:
                    self._logger.error("quiv store: closing the database failed: %s", exc)
                finally:
                    self._release_owner()
                    self._remove_temp()

    # -- writes -----------------------------------------------------------------

    def _writable(self, kind: str, record_id: str) -> bool:
        # puts are fire-and-forget: a late one (an abandoned job ending after
        # shutdown) must not raise into the engine; it is reported and dropped
        if self._state is not STOPPED:
            return True
        self._logger.warning("quiv store: closed, not recording %s %r", kind, record_id)
        return False

    def put_task(self, task: Task | Live[Task], *, new: bool = False) -> None:
        """Queue an insert-or-replace of *task*'s row.

        A *new* task deleted before its row was written is never written.
        After :meth:`aclose` the row is dropped with a warning.
        """
        if self._writable("task", task.id):
            self._writer.put_task(task, new=new)

    def delete_task(self, task_id: str) -> None:
        """Queue the deletion of a task's row (its job history stays).

        After :meth:`aclose` the deletion is dropped with a warning.
        """
        if self._writable("task deletion", task_id):
            self._writer.delete_task(task_id)

    def put_job(self, job: Job | Live[Job]) -> None:
        """Queue an insert-or-replace of *job*'s row.

        After :meth:`aclose` the row is dropped with a warning.
        """
        if self._writable("job", job.id):
            self._writer.put_job(job)

    @property
    def pending_writes(self) -> int:
        """How many rows are queued (or being written) and not yet committed."""
        return self._writer.pending_writes

    async def _write_batch(self, tasks: TaskRows, jobs: JobRows) -> None:
        async with self._lock:
            conn = self._live()
            async with conn.transaction():
                deleted = [(task_id,) for task_id, task in tasks.items() if task is None]
                if deleted:
                    await conn.executemany(DELETE_TASK, deleted)
                live = (task for task in tasks.values() if task is not None)
                await self._write_rows(conn, UPSERT_TASK, live, self._task_row)
                await self._write_rows(conn, UPSERT_JOB, jobs.values(), self._job_row)

    def _task_row(self, task: Task | Live[Task]) -> Row:
        # Live records are snapshotted here, chunk by chunk, as the batch is written.
        return task_to_row(task_record(task), self._owner)

    def _job_row(self, job: Job | Live[Job]) -> Row:
        record = job_record(job)
        if record.result is not None or record.progress is not None:
            self._data[record.id] = (to_micros(record.ended_at), record.result, record.progress)
        else:
            self._data.pop(record.id, None)
        # only a file the user named gets progress payloads (results: see job_to_row)
        return job_to_row(record, self._owner, persist_data=self._temp is None)

    def _with_data(self, row: Row) -> Job:
        job = job_from_row(row)
        data = self._data.get(job.id)
        return job if data is None else with_data(job, data[1], data[2])

    async def _write_rows(
        self, conn: Connection, sql: str, records: Iterable[T], to_row: Callable[[T], Row]
    ) -> None:
        chunk: list[Row] = []
        for record in records:
            try:
                chunk.append(to_row(record))
            except Exception:
                # a record that cannot become a row would fail every retry: drop it alone
                self._logger.exception(
                    "quiv store: dropping %s %r, it cannot be stored",
                    type(record).__name__,
                    getattr(record, "id", None),
                )
            if len(chunk) >= WRITE_CHUNK:
                await conn.executemany(sql, chunk)
                chunk = []
        if chunk:
            await conn.executemany(sql, chunk)

    # -- reads --------------------------------------------------------------------

    def _live(self) -> Connection:
        if self._conn is None or self._state not in (RUNNING, STOPPING):
            raise StoreError("the job store is not open")
        return self._conn

    async def flush(self) -> None:
        """Return once every write queued before the call is committed.

        :raises StoreError: if the store is not open, or the batch holding
            these writes failed (the rows stay queued and are retried)
        """
        if self._state is not RUNNING:
            raise StoreError("the job store is not open")
        await self._writer.flush()

    async def _read(self, sql: str, params: Sequence[Any], convert: Callable[[Row], T]) -> list[T]:
        await self.flush()
        try:
            async with self._lock:
                rows = await self._live().fetchall(sql, params)
            return [convert(row) for row in rows]
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"the job store query failed: {exc}") from exc

    async def get_job(self, job_id: str) -> Job | None:
        """Return the job with this id, or ``None``.

        :raises StoreError: if the store cannot answer
        """
        jobs = await self._read(SELECT_JOB, (job_id,), self._with_data)
        return jobs[0] if jobs else None

    async def get_jobs(self, query: JobQuery) -> list[Job]:
        """Return the jobs matching *query* (NULL sort keys last).

        :raises ConfigurationError: if the query holds invalid values
        :raises StoreError: if the store cannot answer
        """
        sql, params = jobs_query(query)
        return await self._read(sql, params, self._with_data)

    async def count_jobs(self) -> int:
        """Return how many job records the store holds.

        :raises StoreError: if the store cannot answer
        """
        counts = await self._read(COUNT_JOBS, (), lambda row: int(row[0]))
        return counts[0]

    async def get_tasks(self) -> list[Task]:
        """Return the stored tasks (empty arguments), in insertion order.

        :raises StoreError: if the store cannot answer
        """
        return await self._read(SELECT_TASKS, (), task_from_row)

    # -- keyed schedules ------------------------------------------------------------

    async def claim_fire(self, key: str, fire: datetime) -> bool:
        """Claim a keyed schedule's fire for this process, with its new last fire.

        One transaction: the ``fires`` row (unique by key and fire time) and
        the key's last fire in ``schedules``. Of all the processes sharing
        the file, exactly one gets ``True`` for a fire. Writes queued before
        are not waited for: a claim decides whether a job starts, and must
        not queue behind a batch of history.

        :raises StoreError: if the store cannot answer (the fire then does not run)
        """
        micros = to_micros(fire)
        now = to_micros(datetime.now(timezone.utc))
        try:
            async with self._lock:
                conn = self._live()
                async with conn.transaction():
                    claimed = await conn.execute(CLAIM_FIRE, (key, micros, self._owner, now)) == 1
                    if claimed:
                        await conn.execute(SET_LAST_FIRE, (key, micros))
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"claiming fire {fire} of schedule {key!r} failed: {exc}") from exc
        return claimed

    async def last_fires(self) -> dict[str, datetime]:
        """The last claimed fire of every keyed schedule in the file.

        :raises StoreError: if the store cannot answer
        """
        try:
            async with self._lock:
                rows = await self._live().fetchall(SELECT_LAST_FIRES, ())
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"reading the schedules' last fires failed: {exc}") from exc
        fires: dict[str, datetime] = {}
        for key, micros in rows:
            fire = from_micros(int(micros))
            assert fire is not None
            fires[str(key)] = fire
        return fires

    # -- retention ------------------------------------------------------------------

    async def prune(self, now: datetime | None = None) -> int:
        """Delete finished jobs that ended more than the retention before *now*.

        Runs in chunks of :data:`~quiv._store._schema.PRUNE_CHUNK` rows, one
        statement each, so writes wait at most one chunk.

        :param now: the reference time (default: the current UTC time)
        :returns: how many job records were deleted
        :raises StoreError: if the store cannot flush or delete
        """
        await self.flush()
        cutoff = cutoff_micros(self._retention, now)
        if cutoff is None:
            return 0
        statement, params = prune_statement(), (*FINAL_STATUSES, cutoff)
        total = 0
        while True:
            try:
                async with self._lock:
                    deleted = await self._live().execute(statement, params)
            except _DRIVER_ERRORS as exc:
                raise StoreError(f"pruning the job history failed: {exc}") from exc
            total += deleted
            if deleted < PRUNE_CHUNK:
                break
            await anyio.lowlevel.checkpoint()
        self._prune_data(cutoff)
        try:  # the claims of old fires (a schedule's last fire stays)
            async with self._lock:
                await self._live().execute(PRUNE_FIRES, (cutoff,))
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"pruning the claimed fires failed: {exc}") from exc
        return total

    def _prune_data(self, cutoff: int) -> None:
        """Forget the in-memory results and progress of the jobs pruned (ended before *cutoff*)."""
        expired = [
            job_id
            for job_id, (ended, _, _) in self._data.items()
            if ended is not None and ended < cutoff
        ]
        for job_id in expired:
            del self._data[job_id]

    async def _prune_loop(self) -> None:
        interval = prune_interval(self._retention)
        while True:
            try:
                deleted = await self.prune()
            except StoreError as exc:
                if self._state is not RUNNING:
                    return  # closing: not a failure
                self._logger.warning("quiv store: %s", exc)
            else:
                if deleted:
                    self._logger.debug("quiv store: pruned %d finished jobs", deleted)
            await anyio.sleep(interval)


def _host() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""
