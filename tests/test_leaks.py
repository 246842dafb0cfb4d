"""A task's handler, its closure and its arguments are freed with the task.

Once a task is removed, or a run-once task has finished, nothing in the
scheduler may keep its handler (with a closure, a ``functools.partial`` or a
bound method and its ``self``) or its arguments alive: not the handler-spec
cache, not a cancelled timer entry, not an idle worker thread, not the batch
of notices the loop handled last.
"""

from __future__ import annotations

import functools
import gc
import logging
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from scheduler_helpers import WAIT

from quiv import AsyncQuiv, JobStatus, Quiv

pytestmark = pytest.mark.anyio


class Payload:
    """An argument whose lifetime the tests watch."""


class Owner:
    """A handler's ``self``."""

    def handle(self, payload: Payload, _job_id: str) -> None:
        pass

    async def handle_async(self, payload: Payload) -> None:
        pass


def _closure(kind: str) -> Callable[..., Any]:
    """A fresh handler of *kind* each call: none of them is module-level."""
    marker = Payload()  # captured: freed only with the closure
    if kind == "closure":

        def handler(payload: Payload) -> object:
            return marker

        return handler
    if kind == "lambda":
        return lambda payload: marker
    if kind == "async":

        async def async_handler(payload: Payload) -> object:
            return marker

        return async_handler
    if kind == "partial":
        return functools.partial(lambda extra, payload: extra, marker)
    if kind == "bound":
        return Owner().handle
    if kind == "bound-async":
        return Owner().handle_async
    if kind == "failing":

        def failing(payload: Payload) -> None:
            raise RuntimeError(f"boom {marker!r} {payload!r}")

        return failing
    raise AssertionError(kind)


KINDS = ["closure", "lambda", "async", "partial", "bound", "bound-async", "failing"]


def _targets(handler: Callable[..., Any]) -> list[object]:
    """The objects a handler keeps alive that must be freed with it."""
    targets: list[object] = [handler]
    if isinstance(handler, functools.partial):
        targets.append(handler.func)
    self_ = getattr(handler, "__self__", None)
    if self_ is not None:
        targets.append(self_)
    return targets


def _alive(refs: list[weakref.ref[object]]) -> int:
    gc.collect()
    return sum(1 for ref in refs if ref() is not None)


async def _flushed(scheduler: AsyncQuiv) -> AsyncQuiv:
    """Let the store writer write what it holds: a read flushes every pending row.

    The writer keeps the records it has yet to write for one short batch; a
    leak is what stays after that.
    """
    await scheduler.get_all_jobs(limit=1)
    return scheduler


def _quiet_logger() -> logging.Logger:
    """A logger that makes no records.

    A failed job is logged with its exception, whose traceback holds the
    handler's frame and arguments; pytest's log capture keeps every record
    for its report, as any buffering handler would.
    """
    logger = logging.getLogger("quiv.tests.leaks")
    logger.disabled = True
    return logger


async def test_removed_recurring_tasks_free_handlers_and_arguments() -> None:
    refs: list[weakref.ref[object]] = []
    async with AsyncQuiv(pool_size=2) as scheduler:
        ids = []
        for i in range(1000):
            handler = _closure(KINDS[i % len(KINDS)])
            payload = Payload()
            refs += [weakref.ref(o) for o in [*_targets(handler), payload]]
            # far in the future: the cancelled timer entries stay in the heap
            task_id = await scheduler.add_task(
                "t", handler, interval=3600, delay=3600, args=(payload,)
            )
            ids.append(task_id)
            del handler, payload
        assert _alive(refs) == len(refs)  # the scheduler holds them while the tasks exist
        for task_id in ids:
            await scheduler.remove_task(task_id)
        await _flushed(scheduler)
        assert _alive(refs) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_finished_run_once_tasks_free_handlers_and_arguments(kind: str) -> None:
    refs: list[weakref.ref[object]] = []
    async with AsyncQuiv(pool_size=2, logger=_quiet_logger()) as scheduler:
        for _ in range(20):
            handler = _closure(kind)
            payload = Payload()
            refs += [weakref.ref(o) for o in [*_targets(handler), payload]]
            task_id = await scheduler.add_task("once", handler, run_once=True, args=(payload,))
            del handler, payload
            job = await scheduler.wait_for_task(task_id, timeout=WAIT)
            expected = JobStatus.FAILED if kind == "failing" else JobStatus.COMPLETED
            assert job.status is expected
            # wait_for_task still answers for the finished task, from its last job
            again = await scheduler.wait_for_task(task_id, timeout=WAIT)
            assert again.id == job.id
        await _flushed(scheduler)
        assert _alive(refs) == 0


async def test_cancelled_run_once_task_frees_handler_and_arguments() -> None:
    refs: list[weakref.ref[object]] = []
    async with AsyncQuiv(pool_size=1) as scheduler:
        for _ in range(20):
            handler = _closure("closure")
            payload = Payload()
            refs += [weakref.ref(handler), weakref.ref(payload)]
            task_id = await scheduler.add_task(
                "later", handler, run_once=True, delay=3600, args=(payload,)
            )
            del handler, payload
            await scheduler.remove_task(task_id)
        await _flushed(scheduler)
        assert _alive(refs) == 0


def test_sync_face_frees_handlers_and_arguments() -> None:
    refs: list[weakref.ref[object]] = []
    with Quiv(pool_size=2) as scheduler:
        ids = []
        for i in range(200):
            handler = _closure(KINDS[i % len(KINDS)])
            payload = Payload()
            refs += [weakref.ref(o) for o in [*_targets(handler), payload]]
            ids.append(scheduler.add_task("t", handler, interval=3600, delay=3600, args=(payload,)))
            del handler, payload
        for task_id in ids:
            scheduler.remove_task(task_id)
        for _ in range(20):
            handler = _closure("closure")
            payload = Payload()
            refs += [weakref.ref(handler), weakref.ref(payload)]
            task_id = scheduler.add_task("once", handler, run_once=True, args=(payload,))
            del handler, payload
            scheduler.wait_for_task(task_id, timeout=WAIT)
        # A read flushes the store writer's pending rows (see _flushed), on the
        # loop thread, after the removals and job ends it handled before.
        scheduler.get_all_jobs(limit=1)
        assert _alive(refs) == 0


async def test_one_handler_shared_by_many_tasks_is_inspected_once() -> None:
    """The spec cache still serves a handler that many tasks share."""
    from quiv._core.handlers import _spec

    def shared(payload: Payload) -> None:
        pass

    async with AsyncQuiv(pool_size=1) as scheduler:
        ids = [
            await scheduler.add_task("t", shared, interval=3600, delay=3600, args=(Payload(),))
            for _ in range(3)
        ]
        assert _spec(shared) is _spec(shared)
        ref: weakref.ref[object] = weakref.ref(shared)
        del shared
        for task_id in ids:
            await scheduler.remove_task(task_id)
        await _flushed(scheduler)
        assert _alive([ref]) == 0


async def test_removed_tasks_free_their_progress_callbacks() -> None:
    """Tasks share their run settings when equal; a progress callback is never shared."""
    refs: list[weakref.ref[object]] = []
    async with AsyncQuiv(pool_size=2) as scheduler:
        ids = []
        for _ in range(300):
            callback = _closure("closure")
            refs.append(weakref.ref(callback))
            ids.append(
                await scheduler.add_task(
                    "t", _noop, interval=3600, delay=3600, progress_callback=callback
                )
            )
            del callback
        assert _alive(refs) == len(refs)
        for task_id in ids:
            await scheduler.remove_task(task_id)
        await _flushed(scheduler)
        assert _alive(refs) == 0


def _noop() -> None:
    pass
