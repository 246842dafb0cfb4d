"""Waiting until a scheduler is quiet: nothing due now, no handler at work.

quiv knows its own worker threads and worker loops, so it can tell "a
handler is still running" from "everything waits for time to pass", which
an event loop's autojump cannot. :func:`settle` waits, on the scheduler's
loop, until every engine given is quiet:

- its timer task sleeps until a time still to come (it is not awake, with
  work due now);
- no call waits for the main loop (listeners, progress callbacks), and no
  due run of a keyed schedule waits for its fire's claim in the store;
- every job in flight waits on the virtual clock (``current_job().sleep``),
  or is queued behind a pool that only such jobs fill.

No polling while handlers run: the engine calls its ``report_hooks`` after
each batch of its pool's notices (a job started or ended), and the virtual
clock pokes when a handler begins to sleep on it. A short real-time re-check
stays as a safety net.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from .._models import JobStatus

if TYPE_CHECKING:
    from .._core.engine import Engine

__all__ = ("Busy", "busy_jobs", "describe_busy", "settle", "state_of")

RUNNING = JobStatus.RUNNING

#: the longest a settle waits for a notice before it looks again (real seconds)
_RECHECK = 0.02


class Busy(enum.Enum):
    """What an engine is busy with, if anything."""

    #: work on the scheduler's loop: a checkpoint lets it run
    LOOP = enum.auto()
    #: handlers at work on worker threads or worker loops
    HANDLERS = enum.auto()


def busy_jobs(engine: Engine, waiting: Collection[str]) -> list[str]:
    """The names of *engine*'s jobs in flight that do not wait on the virtual clock."""
    runs = list(engine.jobs.values())
    # a job waits once the engine has seen it start (its timeout is armed), and until
    # it is cancelled (its sleep ends at once then, in its own thread)
    busy = [
        run
        for run in runs
        if run.id not in waiting or run.status is not RUNNING or run.control.cancelled
    ]
    if busy and all(not run.control.started for run in busy):
        if len(runs) - len(busy) >= engine.pool_size:  # queued behind sleepers only
            return []
    return [f"{run.task.task_name!r} (job {run.id})" for run in busy]


def describe_busy(engine: Engine, waiting: Collection[str]) -> list[str]:
    """What keeps *engine* from being quiet, for an error message."""
    busy = busy_jobs(engine, waiting)
    if engine.bridge.pending:  # e.g. a Quiv's main loop, blocked by the caller itself
        busy.append(f"{engine.bridge.pending} call(s) waiting for the main loop")
    return busy


def state_of(engine: Engine, waiting: Collection[str]) -> Busy | None:
    """What *engine* is busy with (``None``: it is quiet).

    :param waiting: the ids of the jobs that wait on the virtual clock
    """
    if engine.stopping:
        return None
    if engine.timer.sleeping_until <= engine.clock.now() or engine.bridge.pending:
        return Busy.LOOP
    if engine.host.claiming:  # a due run of a keyed schedule waits for the store's answer
        return Busy.LOOP
    if busy_jobs(engine, waiting):
        return Busy.HANDLERS
    return None


async def settle(
    engines: Callable[[], Iterable[Engine]],
    waiting: Callable[[], Collection[str]],
    subscribe: Callable[[Callable[[], object]], Callable[[], None]] | None = None,
) -> None:
    """Return once every engine of *engines()* is quiet (see :func:`state_of`).

    Call it on the engines' loop; bound it with a timeout (it waits for
    handlers as long as they run).

    :param waiting: the ids of the jobs that wait on the virtual clock, now
    :param subscribe: registers a poke (called on the loop when a handler
        starts to wait on the virtual clock); returns its unregistration
    """
    while True:
        await anyio.lowlevel.checkpoint()
        states = {state_of(engine, waiting()) for engine in engines()}
        if states <= {None}:
            return
        if Busy.LOOP in states:
            continue  # a checkpoint lets the loop's work run
        changed = anyio.Event()
        poke = changed.set
        hooked = list(engines())
        for engine in hooked:
            engine.report_hooks.append(poke)
        unsubscribe = subscribe(poke) if subscribe is not None else None
        try:
            # look again before waiting: a notice may have come meanwhile
            states = {state_of(engine, waiting()) for engine in hooked}
            if Busy.LOOP not in states and Busy.HANDLERS in states:
                with anyio.move_on_after(_RECHECK):
                    await changed.wait()
        finally:
            for engine in hooked:
                engine.report_hooks.remove(poke)
            if unsubscribe is not None:
                unsubscribe()
