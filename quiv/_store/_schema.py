"""The SQL: schema, upserts, job queries and pruning, shared by every connection.

User values only ever travel as bound parameters. The only identifiers put
into SQL text come from fixed whitelists (:data:`ORDER_COLUMNS`), the only
literals from quiv's own constants (job statuses).
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigurationError, StoreError
from .._models import CancelReason, JobStatus
from ._base import JobQuery
from ._connection import Connection
from ._records import JOB_COLUMNS, JOB_WRITE_COLUMNS, TASK_COLUMNS, TASK_WRITE_COLUMNS, to_micros

__all__ = (
    "CLAIM_FIRE",
    "ANY_COMMAND",
    "COUNT_JOBS",
    "DELETE_OWNER",
    "DELETE_OWNER_COMMANDS",
    "DELETE_OWNER_TASKS",
    "DELETE_TASK",
    "INSERT_OWNER",
    "JOB_OWNER",
    "OTHER_IN_FLIGHT",
    "OTHER_TASKS",
    "IN_FLIGHT_STATUSES",
    "REAP_JOBS",
    "REAP_UNOWNED_JOBS",
    "SELECT_OWNERS",
    "FINAL_STATUSES",
    "ORDER_COLUMNS",
    "PRUNE_CHUNK",
    "PRUNE_FIRES",
    "SCHEMA_VERSION",
    "SELECT_JOB",
    "SELECT_LAST_FIRES",
    "SELECT_TASKS",
    "SEND_COMMAND",
    "SET_LAST_FIRE",
    "TAKE_COMMANDS",
    "UPSERT_JOB",
    "UPSERT_TASK",
    "check_query",
    "create_schema",
    "jobs_query",
    "prune_statement",
)

#: bumped when the tables change; a file with another non-zero version is refused,
#: except the versions in :data:`MIGRATES_FROM`
#:
#: 1. the first tables (tasks held their arguments' display strings)
#: 2. no arguments in tasks; an ``owner`` column in tasks and jobs, an ``owners`` table
#: 3. jobs keep their result, last progress, error type, traceback and cancel reason
#: 4. keyed schedules: a ``schedules`` table (each key's last fire) and a
#:    ``fires`` table (each fire claimed, unique by key and fire time); a
#:    ``commands`` table for the processes of a host (host mode)
SCHEMA_VERSION = 4
MIGRATES_FROM = (1, 2, 3)

#: the job columns version 3 added (all nullable: older rows read back ``None``)
_V3_JOB_COLUMNS = (
    "result TEXT",
    "result_state TEXT",
    "progress TEXT",
    "error_type TEXT",
    "traceback TEXT",
    "cancel_reason TEXT",
)

#: ``order_by`` value -> column name (the only identifiers ever interpolated)
ORDER_COLUMNS = {
    "started_at": "started_at",
    "ended_at": "ended_at",
    "scheduled_at": "scheduled_at",
}

FINAL_STATUSES = (
    JobStatus.COMPLETED.value,
    JobStatus.CANCELLED.value,
    JobStatus.FAILED.value,
)
IN_FLIGHT_STATUSES = (JobStatus.SCHEDULED.value, JobStatus.RUNNING.value)

#: rows deleted per pruning transaction, so writes never wait long
PRUNE_CHUNK = 500

_DDL = (
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY NOT NULL,
        task_name TEXT NOT NULL,
        interval_seconds REAL,
        fixed_interval INTEGER NOT NULL,
        run_once INTEGER NOT NULL,
        status TEXT NOT NULL,
        next_run_at INTEGER,
        timeout_seconds REAL,
        max_retries INTEGER NOT NULL,
        retry_backoff_seconds REAL NOT NULL,
        retry_attempt INTEGER NOT NULL,
        jitter_seconds REAL NOT NULL,
        rerun_requested INTEGER NOT NULL,
        owner TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY NOT NULL,
        task_id TEXT NOT NULL,
        task_name TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        duration_seconds REAL,
        error_message TEXT,
        attempt INTEGER NOT NULL,
        scheduled_at INTEGER,
        result TEXT,
        result_state TEXT,
        progress TEXT,
        error_type TEXT,
        traceback TEXT,
        cancel_reason TEXT,
        owner TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS owners (
        id TEXT PRIMARY KEY NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_task_id ON jobs (task_id)",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
    "CREATE INDEX IF NOT EXISTS jobs_started_at ON jobs (started_at)",
    "CREATE INDEX IF NOT EXISTS jobs_ended_at ON jobs (ended_at)",
    # A keyed schedule's last fire, so a restart neither runs it again nor skips it
    """CREATE TABLE IF NOT EXISTS schedules (
        key TEXT PRIMARY KEY NOT NULL,
        last_fire INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # Every fire a process claimed: the primary key makes a second claim of
    # one fire fail, whichever process tries
    """CREATE TABLE IF NOT EXISTS fires (
        key TEXT NOT NULL,
        fire INTEGER NOT NULL,
        owner TEXT NOT NULL,
        claimed_at INTEGER NOT NULL,
        PRIMARY KEY (key, fire)
    ) WITHOUT ROWID""",
    # Commands between the processes of a host (host mode): a cancel, for the
    # process (owner) whose job it is; that process deletes a row as it acts
    """CREATE TABLE IF NOT EXISTS commands (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        kind TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS commands_owner ON commands (owner)",
)


def _upsert(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{col} = excluded.{col}" for col in columns[1:])
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}"
    )


UPSERT_TASK = _upsert("tasks", TASK_WRITE_COLUMNS)
UPSERT_JOB = _upsert("jobs", JOB_WRITE_COLUMNS)
DELETE_TASK = "DELETE FROM tasks WHERE id = ?"
SELECT_JOB = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?"
SELECT_TASKS = f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks ORDER BY rowid"
COUNT_JOBS = "SELECT count(*) FROM jobs"

# -- keyed schedules ------------------------------------------------------------

#: params: key, fire, owner, claimed_at; changes one row if the fire was free
CLAIM_FIRE = (
    "INSERT INTO fires (key, fire, owner, claimed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
#: params: key, fire (a claimed one); the last fire only ever moves forward
SET_LAST_FIRE = (
    "INSERT INTO schedules (key, last_fire) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET last_fire = max(last_fire, excluded.last_fire)"
)
SELECT_LAST_FIRES = "SELECT key, last_fire FROM schedules"
#: params: cutoff (microseconds); a schedule's last fire stays in ``schedules``
PRUNE_FIRES = "DELETE FROM fires WHERE claimed_at < ?"

# -- commands between the processes of a host (quiv._host.link) ----------------

#: params: owner, kind, job_id, created_at
SEND_COMMAND = "INSERT INTO commands (owner, kind, job_id, created_at) VALUES (?, ?, ?, ?)"
#: params: owner
ANY_COMMAND = "SELECT 1 FROM commands WHERE owner = ? LIMIT 1"
#: params: owner; the commands are gone once taken
TAKE_COMMANDS = "DELETE FROM commands WHERE owner = ? RETURNING kind, job_id"
#: params: job id
JOB_OWNER = "SELECT status, owner FROM jobs WHERE id = ?"

# -- owners (see quiv._store._owners) ------------------------------------------

INSERT_OWNER = "INSERT INTO owners (id, pid, host, started_at) VALUES (?, ?, ?, ?)"
SELECT_OWNERS = "SELECT id, pid FROM owners WHERE id != ?"
DELETE_OWNER = "DELETE FROM owners WHERE id = ?"
DELETE_OWNER_TASKS = "DELETE FROM tasks WHERE owner = ?"
DELETE_OWNER_COMMANDS = "DELETE FROM commands WHERE owner = ?"
_IN_FLIGHT = ", ".join(f"'{status}'" for status in IN_FLIGHT_STATUSES)
_CANCEL = (
    f"UPDATE jobs SET status = '{JobStatus.CANCELLED.value}', ended_at = ?,"
    f" cancel_reason = '{CancelReason.INTERRUPTED.value}',"
    " error_message = {message} || status"
    f" WHERE status IN ({_IN_FLIGHT})"
)
#: params: ended_at, pid, owner id
REAP_JOBS = (
    _CANCEL.format(message="'process ' || ? || ' ended while the job was '") + " AND owner = ?"
)
#: the jobs in flight of the other processes sharing the file, by owner; params: this owner
OTHER_IN_FLIGHT = (
    f"SELECT owner, count(*) FROM jobs WHERE status IN ({_IN_FLIGHT})"
    " AND owner IS NOT NULL AND owner != ? GROUP BY owner"
)
#: the task rows the other processes sharing the file wrote; params: this owner
OTHER_TASKS = "SELECT id, status, next_run_at, owner FROM tasks WHERE owner != ?"
#: the jobs of quiv versions that recorded no owner; params: ended_at
REAP_UNOWNED_JOBS = (
    _CANCEL.format(message="'the process ended while the job was '") + " AND owner IS NULL"
)


async def create_schema(conn: Connection) -> int:
    """Set WAL mode, create the tables and indexes if they are missing, migrate old ones.

    A file of schema version 1 is migrated: its tasks table (which held the
    display strings of task arguments, and whose rows belong to processes
    that are gone: schedules are declared again at start) is dropped and
    created anew, and ``jobs`` gains its ``owner`` column (``NULL`` for the
    old rows). The caller then scrubs the freed pages
    (:func:`scrub_free_pages`). A file of version 1 or 2 gains the job
    columns of version 3 (results, progress, error details; ``NULL`` in the
    old rows).

    :returns: the schema version the file had (``0`` for a new file)
    :raises StoreError: if the file holds a schema version quiv does not know
    :raises sqlite3.Error: if SQLite fails (not a database, read-only, ...)
    """
    await conn.fetchall("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    # A small page cache: the store is written far more than it is read, and
    # memory per task matters more than read speed (history queries).
    await conn.execute("PRAGMA cache_size = -256")
    rows = await conn.fetchall("PRAGMA user_version")
    version = int(rows[0][0])
    if version not in (0, SCHEMA_VERSION, *MIGRATES_FROM):
        raise StoreError(
            f"the database has quiv schema version {version}, this quiv knows {SCHEMA_VERSION}"
        )
    async with conn.transaction():
        if version == 1:
            await conn.execute("DROP TABLE IF EXISTS tasks")
            await conn.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        if version in (1, 2):
            for column in _V3_JOB_COLUMNS:
                await conn.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
        for statement in _DDL:
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return version


async def scrub_free_pages(conn: Connection) -> None:
    """Rewrite the file so no page freed by a migration keeps old content.

    ``VACUUM`` copies only live rows; the checkpoint then writes them back and
    truncates the write-ahead log, whose old frames may hold old rows too.

    :raises sqlite3.Error: if SQLite cannot (another connection is reading, say)
    """
    await conn.execute("VACUUM")
    await conn.fetchall("PRAGMA wal_checkpoint(TRUNCATE)")


#: the largest integer SQLite can bind
_MAX_INT = 2**63 - 1


def check_query(query: JobQuery) -> tuple[str, str | None, int, int]:
    """Return ``(order column, status value or None, limit, offset)``, ``-1`` for no limit.

    :raises ConfigurationError: if ``order_by``, ``status``, ``limit`` or
        ``offset`` is not valid (the engine validates first; this is a guard)
    """
    column = ORDER_COLUMNS.get(query.order_by) if isinstance(query.order_by, str) else None
    if column is None:
        raise ConfigurationError.bad_value(
            "order_by", query.order_by, f"one of {sorted(ORDER_COLUMNS)}"
        )
    status: str | None = None
    if query.status is not None:
        try:
            status = JobStatus(query.status).value
        except ValueError:
            raise ConfigurationError.bad_value(
                "status", query.status, f"one of {[s.value for s in JobStatus]}"
            ) from None
    limit, offset = query.limit, query.offset
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigurationError.bad_value("limit", limit, "a non-negative int or None")
    if type(offset) is not int or offset < 0:
        raise ConfigurationError.bad_value("offset", offset, "a non-negative int")
    # SQLite binds 64-bit integers; a larger bound is no bound at all
    offset = min(offset, _MAX_INT)
    return column, status, (-1 if limit is None else min(limit, _MAX_INT)), offset


def jobs_query(query: JobQuery) -> tuple[str, list[Any]]:
    """Build the ``SELECT`` for :meth:`~quiv._store.Store.get_jobs`.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``
    (jobs that never started match neither). NULLs sort last in both
    directions; ties keep insertion order (reversed when descending).

    :raises ConfigurationError: see :func:`check_query`
    """
    column, status, limit, offset = check_query(query)
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if query.task_id is not None:
        where.append("task_id = ?")
        params.append(str(query.task_id))
    if query.since is not None:
        where.append("started_at >= ?")
        params.append(to_micros(query.since))
    if query.until is not None:
        where.append("started_at < ?")
        params.append(to_micros(query.until))
    direction = "DESC" if query.descending else "ASC"
    sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {column} IS NULL, {column} {direction}, rowid {direction} LIMIT ? OFFSET ?"
    params += [limit, offset]
    return sql, params


def prune_statement() -> str:
    """The chunked ``DELETE`` of finished jobs that ended before a cutoff (microseconds)."""
    marks = ", ".join("?" for _ in FINAL_STATUSES)
    return (
        "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs"
        f" WHERE status IN ({marks}) AND ended_at < ? LIMIT {PRUNE_CHUNK:d})"
    )
