"""Live updates: scheduler events fanned out to the open pages, coalesced per job.

The scheduler calls the hub's listeners on its main loop (the server's loop
for a scheduler started in the app's lifespan; the scheduler's own thread
for a ``Quiv`` started outside any loop). A listener only files the event's
record under its key (``job:<id>``, ``task:<id>``) in each open page's
mailbox, under a lock, and posts one non-blocking wake-up to that page's
loop: it never waits for a page, and a slow page costs the scheduler no
more than a fast one. A mailbox keeps the latest record per key, so a job
that reports progress a thousand times while its page is busy is sent once,
with its latest state; each key is sent at most every 0.1 s (so a page gets
about 10 updates a second per job at most). A mailbox that holds too many
keys is emptied and asks its page to reload instead.

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
#: a mailbox holding more keys than this is dropped for a reload of the page
MAX_KEYS = 2000

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

#: a run-once task is gone once its job ended so (a retry keeps it)
_RUN_ONCE_ENDS = frozenset({Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED})


class Update:
    """The latest record under one key: a job or a task, and the event that brought it.

    One update goes to every open page; its text for the stream is made
    once, by the first page that sends it (:meth:`frame`).
    """

    __slots__ = ("_frame", "event", "record")

    def __init__(self, event: str, record: Job | Task) -> None:
        self.event = event
        self.record = record
        self._frame: str | None = None

    @property
    def removal(self) -> bool:
        return self.event == Event.TASK_REMOVED.value

    def frame(self, encode: Callable[[Update], str]) -> str:
        """The update's text for the stream, made by *encode* the first time."""
        if self._frame is None:
            self._frame = encode(self)
        return self._frame


class Mailbox:
    """One open page's pending updates. Filled from any thread, read on the page's loop."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._token: EventLoopToken = current_token()
        self._pending: dict[str, Update] = {}
        self._sent_at: dict[str, float] = {}
        self._overflowed = False
        self._wake_posted = False
        self._wake = anyio.Event()

    def offer(self, key: str, update: Update) -> None:
        """File *update* under *key* (replacing an older one). The hub's lock is held."""
        held = self._pending.get(key)
        if held is not None and held.removal and not update.removal:
            return  # a task's removal is its last word
        self._pending[key] = update
        if len(self._pending) > MAX_KEYS:
            self._pending.clear()
            self._overflowed = True
        if not self._wake_posted:
            self._wake_posted = True
            call_soon(self._token, self._set_wake)

    def put(self, key: str, update: Update) -> None:
        """:meth:`offer`, taking the lock (for updates only this page gets)."""
        with self._lock:
            self.offer(key, update)

    def _set_wake(self) -> None:
        self._wake.set()

    def take(self, now: float) -> tuple[list[Update], bool, float | None]:
        """The updates due now, whether the page must reload, and the seconds to the next due.

        Called on the page's loop. Keys sent less than ``MIN_INTERVAL`` ago
        stay in the mailbox (and may be replaced meanwhile) until their turn.
        """
        with self._lock:
            self._wake_posted = False
            self._wake = anyio.Event()
            overflowed, self._overflowed = self._overflowed, False
            due: list[Update] = []
            wait: float | None = None
            for key, update in list(self._pending.items()):
                ready_at = self._sent_at.get(key, -MIN_INTERVAL) + MIN_INTERVAL
                if ready_at <= now:
                    due.append(update)
                    del self._pending[key]
                    self._sent_at[key] = now
                else:
                    left = ready_at - now
                    wait = left if wait is None else min(wait, left)
            if len(self._sent_at) > MAX_KEYS:
                horizon = now - MIN_INTERVAL
                self._sent_at = {k: t for k, t in self._sent_at.items() if t > horizon}
        return due, overflowed, wait

    async def wait(self, timeout: float) -> None:
        """Wait until something is offered, or *timeout* seconds pass."""
        with anyio.move_on_after(timeout):
            await self._wake.wait()


class Hub:
    """The listeners and the open pages' mailboxes of one dashboard."""

    def __init__(self, listen: Callable[[list[Event], Callable[..., Any], bool], None]) -> None:
        self._listen = listen
        self._lock = threading.Lock()
        self._mailboxes: set[Mailbox] = set()
        self._registration = threading.Lock()

    @property
    def pages(self) -> int:
        """How many pages are open."""
        return len(self._mailboxes)

    def open(self) -> Mailbox:
        """A mailbox for a page that opens now (the first one registers the listeners)."""
        mailbox = Mailbox(self._lock)
        with self._registration:
            first = not self._mailboxes
            with self._lock:
                self._mailboxes.add(mailbox)
            if first:
                self._listen(JOB_EVENTS, self._on_job, True)
                self._listen(TASK_EVENTS, self._on_task, True)
        return mailbox

    def close(self, mailbox: Mailbox) -> None:
        """Forget *mailbox* (the last one removes the listeners)."""
        with self._registration:
            with self._lock:
                self._mailboxes.discard(mailbox)
                last = not self._mailboxes
            if last:
                self._listen(JOB_EVENTS, self._on_job, False)
                self._listen(TASK_EVENTS, self._on_task, False)

    def offer(self, key: str, update: Update) -> None:
        """File *update* in every open page's mailbox; never blocks on a page."""
        with self._lock:
            for mailbox in self._mailboxes:
                mailbox.offer(key, update)

    def _on_job(self, event: Event, task: Task, job: Job) -> None:
        self.offer("job:" + job.id, Update(event.value, job))
        if event is Event.JOB_PROGRESS:
            return
        if task.run_once and event in _RUN_ONCE_ENDS:  # the task ended with its job
            self.offer("task:" + task.id, Update(Event.TASK_REMOVED.value, task))
        else:
            self.offer("task:" + task.id, Update(event.value, task))

    def _on_task(self, event: Event, task: Task) -> None:
        self.offer("task:" + task.id, Update(event.value, task))


def monotonic() -> float:
    """The clock the mailboxes count their intervals on."""
    return time.monotonic()
