"""One async view of either scheduler face, for the dashboard's endpoints.

An :class:`~quiv.AsyncQuiv` is awaited directly (the dashboard runs on the
loop that owns it, the server's); a :class:`~quiv.Quiv`'s blocking methods
run in a worker thread, so the server's loop never waits on them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

from .._errors import ConfigurationError
from .._events import Event
from .._faces.async_face import AsyncQuiv
from .._faces.sync_face import Quiv
from .._models import Job, JobStatus, QuivStats, Task

__all__ = ("Source",)

T = TypeVar("T")

#: the most tasks the page lists
MAX_TASKS = 1000


class Source:
    """The calls the dashboard makes, the same for both faces."""

    def __init__(self, scheduler: object) -> None:
        if not isinstance(scheduler, (AsyncQuiv, Quiv)):
            raise ConfigurationError.bad_value("scheduler", scheduler, "an AsyncQuiv or a Quiv")
        self._face: AsyncQuiv | Quiv = scheduler
        self._async = scheduler if isinstance(scheduler, AsyncQuiv) else None
        self._sync = scheduler if isinstance(scheduler, Quiv) else None
        self.host_mode = scheduler.config.host_mode

    async def _sync_call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(partial(method, *args, **kwargs))

    async def tasks(self) -> list[Task]:
        """The schedules (run-once tasks left out: their jobs show them), by next run."""
        if self._async is not None:
            return await self._async.get_all_tasks(limit=MAX_TASKS)
        assert self._sync is not None
        return await self._sync_call(self._sync.get_all_tasks, limit=MAX_TASKS)

    async def jobs(
        self,
        status: JobStatus | None,
        task_id: str | None,
        since: datetime | None,
        limit: int,
        offset: int,
        order_by: str = "started_at",
    ) -> list[Job]:
        """One page of jobs, newest first."""
        query: dict[str, Any] = {
            "status": status,
            "task_id": task_id,
            "since": since,
            "order_by": order_by,
            "limit": limit,
            "offset": offset,
        }
        if self._async is not None:
            return await self._async.get_all_jobs(**query)
        assert self._sync is not None
        return await self._sync_call(self._sync.get_all_jobs, **query)

    async def job(self, job_id: str) -> Job:
        """One job's record."""
        if self._async is not None:
            return await self._async.get_job(job_id)
        assert self._sync is not None
        return await self._sync_call(self._sync.get_job, job_id)

    async def stats(self) -> QuivStats:
        """The scheduler's summary."""
        if self._async is not None:
            return await self._async.stats()
        assert self._sync is not None
        return await self._sync_call(self._sync.stats)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job (in any worker of the host, in host mode)."""
        if self._async is not None:
            return self._async.cancel_job(job_id)
        assert self._sync is not None
        return await self._sync_call(self._sync.cancel_job, job_id)

    async def act(self, action: str, task_id: str) -> None:
        """``run``, ``pause``, ``resume`` or ``remove`` the task *task_id*."""
        if self._async is not None:
            face = self._async
            await {
                "run": face.run_task_immediately,
                "pause": face.pause_task,
                "resume": face.resume_task,
                "remove": face.remove_task,
            }[action](task_id)
            return
        assert self._sync is not None
        sync = self._sync
        call = {
            "run": sync.run_task_immediately,
            "pause": sync.pause_task,
            "resume": sync.resume_task,
            "remove": sync.remove_task,
        }[action]
        await self._sync_call(call, task_id)

    def listen(self, events: list[Event], callback: Callable[..., Any], *, on: bool) -> None:
        """Add (*on*) or remove *callback* as a listener of each of *events*."""
        for event in events:
            if on:
                self._face.add_listener(event, callback)
            else:
                self._face.remove_listener(event, callback)
