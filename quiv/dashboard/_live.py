"""Live updates: scheduler events fanned out to the open pages, coalesced per job.

The scheduler calls the hub's listeners on its main loop (the server's loop
for a scheduler started in the app's lifespan; the scheduler's own thread
for a ``Quiv`` started outside any loop). A listener does a constant amount
of work however many pages are open: under a lock, it files the event's
record under its key (``job:<id>``, ``task:<id>``) in the hub's one log,
replacing the older record of that key (so the log holds the latest state
of each job and task, in the order they last changed), and posts one
non-blocking wake-up to each page that waits. It never waits for a page.

Each page (a :class:`Mailbox`) reads on its own loop what changed since its
last read, newest entries only, and sends each key at most every
``MIN_INTERVAL`` seconds (about 10 updates a second per job, the latest
state each time); what comes faster waits in the page's own small buffer
and is replaced by newer states meanwhile. The log is bounded: a page so far
behind that what it has not read was dropped, or that has more than
``MAX_BATCH`` updates due at once (a burst of thousands of jobs), is asked
to reload instead (at most once a second, see :mod:`._stream`).

Listeners are registered while at least one page is open, so a dashboard
nobody watches costs the scheduler nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.lowlevel import EventLoopToken, current_token

from .._events import Event
from .._models import Job, Task
from .._xthread.loops import call_soon

__all__ = ("Hub", "Mailbox", "Update")

#: a key is sent to a page at most this often (seconds)
MIN_INTERVAL = 0.1
#: the log keeps the latest records of this many keys
MAX_KEYS = 2000
#: a page with more updates than this due at once reloads instead
MAX_BATCH = 200

JOB_EVENTS = [
    Event.JOB_STARTED,
    Event.JOB_PROGRESS,
    Event.JOB_COMPLETED,
    Event.JOB_FAILED,
    Event.JOB_CANCELLED,
    Event.JOB_RETRYING,
]
TASK_EVENTS = [
    Event.TASK_ADDED,
    Event.TASK_REMOVED,
    Event.TASK_PAUSED,
    Event.TASK_RESUMED,
    Event.TASK_UPDATED,
    Event.TASK_RUN_SKIPPED,
]
_REMOVED = Event.TASK_REMOVED.value


class Update:
    """The latest record under one key: a job or a task, and the event that brought it.

    One update goes to every open page; its text for the stream is made
    once, by the first page that sends it (:meth:`frame`).
    """

    __slots__ = ("_frame", "event", "record", "removal")

    def __init__(self, event: str, record: Job | Task) -> None:
        self.event = event
        self.record = record
        #: a task's removal: no later update of its key replaces it
        self.removal = event == _REMOVED
        self._frame: str | None = None

    def frame(self, encode: Callable[[Update], str]) -> str:
        """The update's text for the stream, made by *encode* the first time."""
        if self._frame is None:
            self._frame = encode(self)
        return self._frame


class Mailbox:
    """One open page's reading position in the hub's log. Read on the page's loop."""

    def __init__(self, hub: Hub, start: int) -> None:
        self._hub = hub
        self._token: EventLoopToken = current_token()
        self._seen = start
        self._held: dict[str, Update] = {}
        self._sent_at: dict[str, float] = {}
        self._wake = anyio.Event()

    def wake(self) -> None:
        """Post a wake-up to the page's loop (from any thread; never blocks)."""
        call_soon(self._token, self._wake.set)

    def put(self, key: str, update: Update) -> None:
        """Give this page alone *update* (the host-mode watch's finds)."""
        self._held[key] = update

    def take(self, now: float) -> tuple[list[Update], bool, float | None]:
        """The updates due now, whether the page must reload, and the seconds to the next due.

        Keys sent less than ``MIN_INTERVAL`` ago wait in the page's buffer
        (replaced by newer states meanwhile) until their turn.
        """
        self._wake = anyio.Event()
        fresh, overflowed, self._seen = self._hub.read_since(self._seen, self)
        held = self._held
        if overflowed:  # the page reloads everything instead
            held.clear()
            fresh = []
        for key, update in fresh:
            if not (key in held and held[key].removal and not update.removal):
                held[key] = update
        if len(held) > MAX_BATCH:  # a burst: one reload of the page costs less
            held.clear()
            overflowed = True
        due: list[Update] = []
        wait: float | None = None
        sent_at = self._sent_at
        for key, update in list(held.items()):
            ready_at = sent_at.get(key, -MIN_INTERVAL) + MIN_INTERVAL
            if ready_at <= now:
                due.append(update)
                del held[key]
                sent_at[key] = now
            else:
                left = ready_at - now
                wait = left if wait is None else min(wait, left)
        if len(sent_at) > MAX_KEYS:
            horizon = now - MIN_INTERVAL
            self._sent_at = {k: t for k, t in sent_at.items() if t > horizon}
        return due, overflowed, wait

    async def wait(self, timeout: float) -> None:
        """Wait until something new is logged (or given), or *timeout* seconds pass."""
        with anyio.move_on_after(timeout):
            await self._wake.wait()


class Hub:
    """The listeners, the log of latest records, and the open pages of one dashboard."""

    def __init__(self, listen: Callable[[list[Event], Callable[..., Any], bool], None]) -> None:
        self._listen = listen
        self._lock = threading.Lock()
        self._registration = threading.Lock()
        self._mailboxes: set[Mailbox] = set()
        #: key -> (sequence number, update), oldest change first
        self._log: dict[str, tuple[int, Update]] = {}
        self._seq = 0
        #: the highest sequence number dropped from the log
        self._dropped = 0
        #: pages that read everything and wait for news
        self._waiting: list[Mailbox] = []

    @property
    def pages(self) -> int:
        """How many pages are open."""
        return len(self._mailboxes)

    def open(self) -> Mailbox:
        """A mailbox for a page that opens now (the first one registers the listeners)."""
        with self._registration:
            with self._lock:
                mailbox = Mailbox(self, self._seq)
                first = not self._mailboxes
                self._mailboxes.add(mailbox)
            if first:
                self._listen(JOB_EVENTS, self._on_job, True)
                self._listen(TASK_EVENTS, self._on_task, True)
        return mailbox

    def close(self, mailbox: Mailbox) -> None:
        """Forget *mailbox* (the last one removes the listeners and empties the log)."""
        with self._registration:
            with self._lock:
                self._mailboxes.discard(mailbox)
                if mailbox in self._waiting:
                    self._waiting.remove(mailbox)
                last = not self._mailboxes
                if last:
                    self._log.clear()
                    self._dropped = self._seq
            if last:
                self._listen(JOB_EVENTS, self._on_job, False)
                self._listen(TASK_EVENTS, self._on_task, False)

    def offer(self, key: str, update: Update) -> None:
        """Log *update* as *key*'s latest record; wake the pages that wait. Never blocks."""
        with self._lock:
            log = self._log
            old = log.pop(key, None)
            if old is not None and old[1].removal and not update.removal:
                log[key] = old  # a task's removal is its last word
                return
            self._seq += 1
            log[key] = (self._seq, update)
            if len(log) > MAX_KEYS:
                oldest = next(iter(log))
                self._dropped = log.pop(oldest)[0]
            waiting, self._waiting = self._waiting, []
        for mailbox in waiting:
            mailbox.wake()

    def read_since(self, seen: int, reader: Mailbox) -> tuple[list[tuple[str, Update]], bool, int]:
        """The log's entries newer than *seen*, oldest first; whether some were dropped; the
        newest sequence number. *reader* is woken at the next offer."""
        with self._lock:
            fresh: list[tuple[str, Update]] = []
            for key in reversed(self._log):
                seq, update = self._log[key]
                if seq <= seen:
                    break
                fresh.append((key, update))
            fresh.reverse()
            overflowed = self._dropped > seen
            if reader not in self._waiting:
                self._waiting.append(reader)
            return fresh, overflowed, self._seq

    def _on_job(self, event: Event, task: Task, job: Job) -> None:
        self.offer("job:" + job.id, Update(event.value, job))
        if event is not Event.JOB_PROGRESS and not task.run_once:
            self.offer("task:" + task.id, Update(event.value, task))

    def _on_task(self, event: Event, task: Task) -> None:
        if not task.run_once:  # the page lists schedules; a run-once task shows as its job
            self.offer("task:" + task.id, Update(event.value, task))


def monotonic() -> float:
    """The clock the mailboxes count their intervals on."""
    return time.monotonic()
