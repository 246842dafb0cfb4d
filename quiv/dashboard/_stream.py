"""The server-sent event stream of one open page.

It sends what the page's mailbox holds as it arrives (see :mod:`._live`),
the scheduler's statistics at most once a second while things change, and
a comment every 15 s so proxies keep the connection. In host mode it also
reads the host's shared history every 0.5 s (on the server, not the page)
for the jobs of other workers, whose events fire in their own processes.

A stream ends after ``LIFETIME`` seconds and the browser reconnects at once
(``retry:``), reloading its tables: a server that shuts down then waits for
no stream longer than that.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .._errors import QuivError
from .._models import Job, JobStatus, Task
from ._live import Hub, Mailbox, Update, monotonic
from ._records import job_json, stats_json, task_json
from ._source import Source

__all__ = ("event_stream",)

#: seconds a stream stays open before the page reconnects
LIFETIME = 25.0
HEARTBEAT = 15.0
#: after a write, a stream waits this long (seconds) before it looks for more
FLUSH_GAP = 0.02
STATS_INTERVAL = 1.0
#: a page is asked to reload at most this often (seconds)
RELOAD_INTERVAL = 1.0
HOST_INTERVAL = 0.5
#: how many of the latest ended jobs the host watch compares
HOST_RECENT = 50


def _frame(message: dict[str, Any]) -> str:
    return "data: " + json.dumps(message, separators=(",", ":")) + "\n\n"


def _encode(update: Update) -> str:
    record = update.record
    if isinstance(record, Job):
        return _frame({"type": "job", "event": update.event, "job": job_json(record)})
    assert isinstance(record, Task)
    return _frame({"type": "task", "event": update.event, "task": task_json(record)})


class _HostWatch:
    """Finds the jobs of other workers that changed since the last look."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._seen: dict[str, tuple[Any, ...]] = {}

    async def changes(self) -> list[Job]:
        running = await self._source.jobs(JobStatus.RUNNING, None, None, 200, 0)
        ended = await self._source.jobs(None, None, None, HOST_RECENT, 0, order_by="ended_at")
        changed = []
        seen: dict[str, tuple[Any, ...]] = {}
        for job in [*running, *ended]:
            state = (job.status, job.progress, job.ended_at, job.attempt)
            seen[job.id] = state
            if self._seen.get(job.id) != state:
                changed.append(job)
        self._seen = seen  # the first look sends them all: the page may have loaded before
        return changed


async def event_stream(hub: Hub, mailbox: Mailbox, source: Source) -> AsyncIterator[str]:
    """The stream's text, frame by frame, until its lifetime ends; closes *mailbox*."""
    try:
        yield "retry: 500\n\n" + _frame({"type": "hello", "host_mode": source.host_mode})
        start = now = monotonic()
        last_beat = last_stats = start
        stats_due: float | None = None
        reload_due: float | None = None
        last_reload = start - RELOAD_INTERVAL
        watch = _HostWatch(source) if source.host_mode else None
        next_watch = start
        while now - start < LIFETIME:
            if watch is not None and now >= next_watch:
                next_watch = now + HOST_INTERVAL
                try:
                    for job in await watch.changes():
                        mailbox.put("job:" + job.id, Update("job_changed", job))
                except QuivError:
                    pass  # the scheduler stopped: the page shows what it has
                now = monotonic()
            updates, overflowed, wait = mailbox.take(now)
            if overflowed and reload_due is None:
                reload_due = max(now, last_reload + RELOAD_INTERVAL)
            frames = []
            if reload_due is not None:
                updates = []  # the reload brings the page up to date
                if now >= reload_due:
                    frames.append(_frame({"type": "reload"}))
                    last_reload, reload_due = now, None
                else:
                    wait = reload_due - now
            frames.extend(update.frame(_encode) for update in updates)
            if frames:
                stats_due = stats_due or max(now, last_stats + STATS_INTERVAL)
            if stats_due is not None and now >= stats_due:
                try:
                    frames.append(
                        _frame({"type": "stats", "stats": stats_json(await source.stats())})
                    )
                except QuivError:
                    pass
                last_stats, stats_due = now, None
            if frames:
                last_beat = now
                yield "".join(frames)
                # gather what comes next for a moment: fewer, larger writes
                await anyio.sleep(FLUSH_GAP)
            elif now - last_beat >= HEARTBEAT:
                last_beat = now
                yield ": keep-alive\n\n"
            timeouts = [HEARTBEAT, LIFETIME - (now - start)]
            if wait is not None:
                timeouts.append(wait)
            if stats_due is not None:
                timeouts.append(stats_due - now)
            if watch is not None:
                timeouts.append(next_watch - now)
            timeout = min(timeouts)
            await mailbox.wait(max(timeout, 0.0))
            now = monotonic()
    finally:
        hub.close(mailbox)
