"""Commands between the processes of a host: a cancel reaches the job wherever it runs.

Every host-mode scheduler opens a connection of its own to the shared file
(besides its store's) and watches it: ``PRAGMA data_version`` changes when
another connection commits, and costs a few microseconds to read, so the
watcher reads it every :data:`WATCH_SECONDS` on the loop, and only when it
changed looks for commands addressed to this process (its store's owner
id) in the ``commands`` table. The few writes (sending a command, taking
those addressed here) run in a worker thread, as they may wait for
another process's write to finish.

SQLite has no notification between processes, so this is a poll; an idle
host costs each process 20 reads of an in-memory counter a second (see
``bench/`` for the measured idle CPU).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final

import anyio

from .._errors import StoreError
from .._models import JobStatus, TaskStatus
from .._store._connection import BUSY_TIMEOUT_MS
from .._store._owners import owner_alive
from .._store._records import from_micros, to_micros
from .._store._schema import (
    ANY_COMMAND,
    JOB_OWNER,
    OTHER_IN_FLIGHT,
    OTHER_TASKS,
    SEND_COMMAND,
    TAKE_COMMANDS,
)
from .._typing import Logger

__all__ = ("CANCEL", "WATCH_SECONDS", "Elsewhere", "HostLink")

#: how often the watcher reads the file's change counter (the latency of a command, at most)
WATCH_SECONDS: Final = 0.1
CANCEL: Final = "cancel"
_IN_FLIGHT = (JobStatus.SCHEDULED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """What the host's other live processes have, as the shared file shows it."""

    #: ``(task id, status, next run)`` of each task row another live process wrote
    tasks: tuple[tuple[str, TaskStatus, datetime | None], ...]
    #: how many of their jobs are scheduled or running
    active_jobs: int


class HostLink:
    """This process's end of the commands between the processes sharing *path*."""

    def __init__(self, path: str, owner: str, logger: Logger) -> None:
        self._path = path
        self.owner = owner
        self._logger = logger
        # Reads only, on the loop; in WAL mode a reader never waits for a writer.
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA query_only = 1")
        self._version = self._data_version()

    def close(self) -> None:
        self._reader.close()

    def _data_version(self) -> int:
        return int(self._reader.execute("PRAGMA data_version").fetchone()[0])

    def job_owner(self, job_id: str) -> str | None:
        """The owner of *job_id* if the host's history shows it in flight, else ``None``."""
        row = self._reader.execute(JOB_OWNER, (job_id,)).fetchone()
        if row is None or row[0] not in _IN_FLIGHT or row[1] is None:
            return None
        return str(row[1])

    def elsewhere(self) -> Elsewhere:
        """The tasks and jobs in flight of the host's other processes (for ``stats()``).

        Rows of a process that ended without closing (killed) are left out:
        its jobs are recorded cancelled when the next runner takes over.

        :raises StoreError: if the file cannot be read
        """
        alive: dict[str, bool] = {}

        def live(owner: object) -> bool:
            key = str(owner)
            if key not in alive:
                alive[key] = owner_alive(self._path, key)
            return alive[key]

        try:
            jobs = self._reader.execute(OTHER_IN_FLIGHT, (self.owner,)).fetchall()
            tasks = self._reader.execute(OTHER_TASKS, (self.owner,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the host's other processes failed: {exc}") from exc
        return Elsewhere(
            tasks=tuple(
                (str(task_id), TaskStatus(status), from_micros(next_run))
                for task_id, status, next_run, owner in tasks
                if live(owner)
            ),
            active_jobs=sum(int(count) for owner, count in jobs if live(owner)),
        )

    async def send(self, owner: str, kind: str, job_id: str) -> None:
        """Address a command to the process *owner*."""
        now = to_micros(datetime.now(timezone.utc))
        await anyio.to_thread.run_sync(self._write, SEND_COMMAND, (owner, kind, job_id, now))

    def _write(self, sql: str, params: tuple[object, ...]) -> list[tuple[str, str]]:
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            rows = conn.execute(sql, params).fetchall()
        finally:
            conn.close()
        return [(str(kind), str(job_id)) for kind, job_id in rows]

    async def check(self, act: Callable[[str, str], None], changed: Callable[[], None]) -> None:
        """One look at the file: call ``act(kind, job_id)`` for each command sent here.

        Called every :data:`WATCH_SECONDS`. *changed* is called first if
        another connection wrote to the file since the last look.
        """
        try:
            version = self._data_version()
            if version == self._version:
                return
            self._version = version
            changed()
            if self._reader.execute(ANY_COMMAND, (self.owner,)).fetchone() is None:
                return
            commands = await anyio.to_thread.run_sync(self._write, TAKE_COMMANDS, (self.owner,))
        except sqlite3.Error as exc:
            self._logger.warning("quiv host mode: reading commands failed: %s", exc)
            return
        for kind, job_id in commands:
            try:
                act(kind, job_id)
            except Exception:
                self._logger.exception("quiv host mode: command %s %s failed", kind, job_id)
