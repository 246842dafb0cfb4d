"""Who may use a database file: one process, or (host mode) the processes of one host.

The runner lock (:mod:`quiv._host.runner`) decides it when a scheduler
starts on a file: without host mode the scheduler holds the lock for as long
as it runs, so a second process on the file is refused at its start; in host
mode the holder is the host's runner, and the others wait for the lock as
standbys.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from .._errors import ConfigurationError
from .filesystems import network_file_system
from .link import CANCEL, WATCH_SECONDS, HostLink
from .runner import HOST, POLL_SECONDS, SINGLE, RunnerLock

if TYPE_CHECKING:
    from .._core.engine import Engine

__all__ = ("claim_database",)


async def claim_database(
    stack: AsyncExitStack, task_group: TaskGroup, engine: Engine, path: str, *, host_mode: bool
) -> None:
    """Take the runner role of the database file *path*, or (host mode) wait for it.

    Without host mode the scheduler must be the only process on the file:
    if another holds the role, starting fails. In host mode the scheduler
    takes the role now if it is free, else keeps trying in *task_group*
    (a standby), and takes commands from the other processes.

    :raises ConfigurationError: if another process uses the file in the other
        mode (or, without host mode, at all), or the file system cannot lock
        files, where nothing could keep two processes from running the same
        schedules
    """
    network = network_file_system(path)
    if network is not None:
        raise ConfigurationError(
            f"db_path={path!r} is on a network file system ({network}), where file locks"
            " and SQLite's write-ahead log are not safe between processes; put the"
            " database on a local disk"
        )
    try:
        lock = RunnerLock(path)
        stack.callback(lock.close)
        engine.host.release_runner = lock.close
        runner = lock.try_acquire(HOST if host_mode else SINGLE)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot lock files beside db_path={path!r} ({exc}); a database quiv shares"
            " between runs must be on a local file system (not NFS or another network"
            " file system)"
        ) from exc
    if not runner:
        pid, mode = lock.holder()
        if not host_mode:
            raise ConfigurationError(
                f"db_path={path!r} is in use by another process (pid {pid}); processes that"
                " share a database need host_mode=True, every one of them"
            )
        if mode == SINGLE:
            raise ConfigurationError(
                f"db_path={path!r} is in use by a process without host mode (pid {pid});"
                " processes that share a database need host_mode=True, every one of them"
            )
    if not host_mode:
        return
    store = engine.store
    owner = getattr(store, "owner", None)
    link = None
    if isinstance(owner, str) and owner:
        link = HostLink(path, owner, engine.logger)
        stack.callback(link.close)
        engine.host.connect(link, task_group)
    if runner:
        engine.host.promote()

    def act(kind: str, job_id: str) -> None:
        if kind == CANCEL:
            engine.cancel_job(job_id)

    async def watch() -> None:
        # One wake-up every WATCH_SECONDS does both: look for commands, and
        # (a standby) try for the runner role every POLL_SECONDS.
        nonlocal runner
        looks = 0
        every = max(1, round(POLL_SECONDS / WATCH_SECONDS))
        while True:
            await anyio.sleep(WATCH_SECONDS)
            if link is not None:
                await link.check(act, engine.host.changed)
            looks += 1
            if runner or looks % every or not lock.try_acquire(HOST):
                continue
            runner = True
            if engine.stopping:
                lock.close()
                continue
            engine.logger.info("quiv: this process (pid %d) is now the host's runner", os.getpid())
            reap = getattr(engine.store, "reap_dead_owners", None)
            if reap is not None:  # the jobs a killed runner left in flight end now
                try:
                    await reap()
                except Exception:
                    engine.logger.exception("quiv: could not reap the ended processes' jobs")
            try:  # the old runner's last fires: counted on from, not run again
                last_fires = await engine.store.last_fires()
            except Exception:
                engine.logger.exception("quiv: could not read the schedules' last fires")
                last_fires = None
            engine.host.promote(last_fires)

    task_group.start_soon(watch, name="quiv host mode")
