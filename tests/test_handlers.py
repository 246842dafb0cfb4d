"""The handler contract: sync/async detection, injected parameters, current_job()."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from scheduler_helpers import WAIT, Recorder, settle

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    HandlerRegistrationError,
    JobContext,
    JobStatus,
    current_job,
)
from quiv._core.handlers import inspect_handler, is_async_callable
from quiv.testing import FakeClock

# -- detection (unit) -----------------------------------------------------------


async def _coro_fn() -> None:
    pass


class _AsyncCall:
    async def __call__(self) -> None:
        pass


class _SyncCall:
    def __call__(self) -> None:
        pass


class _Methods:
    async def amethod(self) -> None:
        pass

    def smethod(self) -> None:
        pass

    @staticmethod
    async def astatic() -> None:
        pass

    @classmethod
    async def aclass(cls) -> None:
        pass


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (_coro_fn, True),
        (_AsyncCall(), True),
        (_SyncCall(), False),
        (_Methods().amethod, True),
        (_Methods().smethod, False),
        (_Methods.astatic, True),
        (_Methods.aclass, True),
        (functools.partial(_coro_fn), True),
        (functools.partial(functools.partial(_coro_fn)), True),
        (functools.partial(_AsyncCall()), True),
        (lambda: None, False),
        (print, False),
        (_AsyncCall, False),  # the class: calling it makes an instance
        (lambda: _coro_fn(), False),  # detected when it runs (returns a coroutine)
    ],
)
def test_is_async_callable(func: object, expected: bool) -> None:
    assert is_async_callable(func) is expected


def test_inspect_handler_rejects_non_callables() -> None:
    with pytest.raises(HandlerRegistrationError, match="func must be callable, got 42"):
        inspect_handler(42, {})


def test_inspect_handler_reads_declared_injections() -> None:
    def handler(a: int, _job_id: str, *, stop_event: Any, other: int = 0) -> None:
        pass

    spec = inspect_handler(handler, {})
    assert dict(spec.injected) == {"_job_id": "job_id", "stop_event": "stop_event"}
    assert not spec.is_async
    assert spec.name.endswith("handler")


def test_inspect_handler_ignores_var_kw_and_positional_only() -> None:
    def handler(_job_id: str, /, *args: Any, **kwargs: Any) -> None:
        pass

    assert dict(inspect_handler(handler, {}).injected) == {}


def test_uninspectable_callables_get_no_injection() -> None:
    assert dict(inspect_handler(print, {}).injected) == {}


# -- injection through the scheduler ---------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.args: tuple[Any, ...] = ()


async def run_job(scheduler: AsyncQuiv, func: Callable[..., Any], **options: Any) -> Any:
    rec = Recorder(scheduler, [Event.JOB_STARTED])
    task_id = await scheduler.add_task("inject", func, run_once=True, **options)
    job = await scheduler.wait_for_task(task_id, timeout=WAIT)
    assert job.status is JobStatus.COMPLETED, job.error_message
    await rec.wait_count(Event.JOB_STARTED, 1)
    return job


@pytest.mark.parametrize("spelling", ["seed", "quiv1"])
@pytest.mark.parametrize("is_async", [False, True])
async def test_injected_values(scheduler: AsyncQuiv, spelling: str, is_async: bool) -> None:
    seen: dict[str, Any] = {}
    progress: list[dict[str, Any]] = []
    delivered = anyio.Event()

    def on_progress(**payload: Any) -> None:
        progress.append(payload)
        delivered.set()

    if spelling == "seed":

        def sync_handler(_job_id: str, _stop_event: threading.Event, _progress_hook: Any) -> None:
            seen.update(job_id=_job_id, stop_event=_stop_event, hook=_progress_hook)
            _progress_hook(step=1)

        async def async_handler(
            _job_id: str, _stop_event: threading.Event, _progress_hook: Any
        ) -> None:
            sync_handler(_job_id, _stop_event, _progress_hook)

    else:

        def sync_handler(job_id: str, stop_event: threading.Event, progress_hook: Any) -> None:  # type: ignore[misc]
            seen.update(job_id=job_id, stop_event=stop_event, hook=progress_hook)
            progress_hook(step=1)

        async def async_handler(  # type: ignore[misc]
            job_id: str, stop_event: threading.Event, progress_hook: Any
        ) -> None:
            sync_handler(job_id, stop_event, progress_hook)

    func = async_handler if is_async else sync_handler
    job = await run_job(scheduler, func, progress_callback=on_progress)
    assert seen["job_id"] == job.id
    assert isinstance(seen["stop_event"], threading.Event)
    assert not seen["stop_event"].is_set()
    assert callable(seen["hook"])
    with anyio.fail_after(WAIT):
        await delivered.wait()
    assert progress == [{"step": 1}]


async def test_only_declared_parameters_are_injected(scheduler: AsyncQuiv) -> None:
    seen = Seen()

    def handler(a: int, _job_id: str, **kwargs: Any) -> None:
        seen.args = (a, _job_id)
        seen.kwargs = kwargs

    job = await run_job(scheduler, handler, args=(7,))
    assert seen.args == (7, job.id)
    assert seen.kwargs == {}  # **kwargs gets nothing injected


async def test_var_kwargs_alone_gets_nothing(scheduler: AsyncQuiv) -> None:
    seen = Seen()

    def handler(*args: Any, **kwargs: Any) -> None:
        seen.args, seen.kwargs = args, kwargs

    await run_job(scheduler, handler, args=(1,), kwargs={"x": 2})
    assert seen.args == (1,)
    assert seen.kwargs == {"x": 2}


@pytest.mark.parametrize("name", ["_job_id", "job_id", "_stop_event", "progress_hook"])
async def test_an_undeclared_injected_name_in_kwargs_is_passed_through(
    scheduler: AsyncQuiv, name: str
) -> None:
    seen = Seen()

    def handler(**kwargs: Any) -> None:
        seen.kwargs = kwargs

    await run_job(scheduler, handler, kwargs={name: "mine"})
    assert seen.kwargs == {name: "mine"}


async def test_the_other_spelling_in_kwargs_is_passed_through(scheduler: AsyncQuiv) -> None:
    """The handler declares ``_job_id``; a ``job_id`` kwarg is an ordinary argument."""
    seen: dict[str, Any] = {}

    def handler(_job_id: str, **kwargs: Any) -> None:
        seen.update(_job_id=_job_id, **kwargs)

    job = await run_job(scheduler, handler, kwargs={"job_id": "user value"})
    assert seen == {"_job_id": job.id, "job_id": "user value"}


@pytest.mark.parametrize(
    "handler",
    [
        lambda _job_id, job_id: None,
        lambda _stop_event, stop_event: None,
        lambda progress_hook, _progress_hook: None,
        lambda *, _job_id, job_id: None,
    ],
)
async def test_both_spellings_are_a_configuration_error(
    scheduler: AsyncQuiv, handler: Callable[..., Any]
) -> None:
    rec = Recorder(scheduler, [Event.TASK_ADDED])
    with pytest.raises(ConfigurationError, match="declares both"):
        await scheduler.add_task("both", handler, interval=1)
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    assert rec.records == []


@pytest.mark.parametrize("name", ["_job_id", "stop_event", "_progress_hook"])
async def test_a_kwargs_clash_with_a_declared_injection_is_rejected(
    scheduler: AsyncQuiv, name: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def handler({name}=None): pass", namespace)
    rec = Recorder(scheduler, [Event.TASK_ADDED])
    with pytest.raises(ConfigurationError, match=repr(name)):
        await scheduler.add_task("clash", namespace["handler"], interval=1, kwargs={name: 1})
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    assert rec.records == []
    # update_task checks against the registered handler too
    task_id = await scheduler.add_task("ok", namespace["handler"], interval=1, delay=100)
    with pytest.raises(ConfigurationError, match=repr(name)):
        await scheduler.update_task(task_id, kwargs={name: 1})
    assert (await scheduler.get_task(task_id)).kwargs == {}


@pytest.mark.parametrize("name", ["_job_id", "job_id", "stop_event", "_progress_hook"])
async def test_a_positional_argument_that_would_bind_to_an_injection_is_rejected(
    scheduler: AsyncQuiv, name: str
) -> None:
    """``def f(job_id)`` with ``args=(42,)`` would be a TypeError at every run."""
    namespace: dict[str, Any] = {}
    exec(f"def handler(first, {name}, last=None): pass", namespace)
    handler = namespace["handler"]
    rec = Recorder(scheduler, [Event.TASK_ADDED])
    with pytest.raises(ConfigurationError, match=rf"args\[1\]=42 .*{name!r}"):
        await scheduler.add_task("clash", handler, interval=1, args=("a", 42))
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    assert rec.records == []
    # one positional argument binds to `first` only: accepted, and it runs
    job = await run_job(scheduler, handler, args=("a",))
    assert job.status is JobStatus.COMPLETED
    task_id = await scheduler.add_task("ok", handler, interval=1, delay=100, args=("a",))
    with pytest.raises(ConfigurationError, match=repr(name)):
        await scheduler.update_task(task_id, args=("a", 42))
    assert (await scheduler.get_task(task_id)).args == ("a",)

    # a bound method's `self` is not a positional slot the arguments fill
    class Worker:
        def run(self, _job_id: str) -> None:
            pass

    with pytest.raises(ConfigurationError, match="'_job_id'"):
        await scheduler.add_task("m", Worker().run, interval=1, args=(1,))
    with pytest.raises(ConfigurationError, match=repr(name)):  # nor a partial's arguments
        await scheduler.add_task("p", functools.partial(handler, "x"), interval=1, args=(1,))


async def test_injection_into_methods_and_partials(scheduler: AsyncQuiv) -> None:
    seen: list[str] = []

    class Worker:
        def run(self, prefix: str, _job_id: str) -> None:
            seen.append(prefix + _job_id)

        async def arun(self, prefix: str, job_id: str) -> None:
            seen.append(prefix + job_id)

    job1 = await run_job(scheduler, Worker().run, args=("s:",))
    job2 = await run_job(scheduler, functools.partial(Worker().arun, "a:"))
    assert seen == ["s:" + job1.id, "a:" + job2.id]


# -- current_job() -----------------------------------------------------------------


def test_current_job_is_none_outside_a_job() -> None:
    assert current_job() is None


async def test_current_job_is_none_on_the_main_loop(scheduler: AsyncQuiv) -> None:
    assert current_job() is None
    outside: list[JobContext | None] = []

    def listener(*args: Any) -> None:
        outside.append(current_job())

    scheduler.add_listener(Event.JOB_COMPLETED, listener)
    rec = Recorder(scheduler, [Event.JOB_COMPLETED])
    await scheduler.add_task("t", lambda: current_job(), run_once=True)
    await rec.wait_count(Event.JOB_COMPLETED, 1)
    assert outside == [None]
    assert current_job() is None


def _deep(depth: int) -> JobContext | None:
    return current_job() if depth == 0 else _deep(depth - 1)


async def test_current_job_at_any_depth_in_a_sync_handler(scheduler: AsyncQuiv) -> None:
    found: dict[str, Any] = {}

    def handler(_stop_event: threading.Event) -> None:
        ctx = _deep(20)
        found["ctx"] = ctx
        found["stop"] = _stop_event
        # a thread started with the job's context sees it too
        child: list[JobContext | None] = []
        context = contextvars.copy_context()
        t = threading.Thread(target=lambda: child.append(context.run(current_job)))
        t.start()
        t.join(WAIT)
        found["child"] = child[0]

    rec = Recorder(scheduler, [Event.JOB_COMPLETED])
    task_id = await scheduler.add_task("deep", handler, run_once=True)
    [job] = await rec.wait_count(Event.JOB_COMPLETED, 1)
    ctx = found["ctx"]
    assert isinstance(ctx, JobContext)
    assert ctx.job_id == job.id
    assert ctx.task_id == task_id
    assert ctx.task_name == "deep"
    assert ctx.attempt == 1
    assert ctx.stop_event is found["stop"]
    assert found["child"] is ctx
    assert current_job() is None


async def test_current_job_at_any_depth_in_an_async_handler(scheduler: AsyncQuiv) -> None:
    found: list[JobContext | None] = []

    async def inner(depth: int) -> None:
        if depth:
            await inner(depth - 1)
        else:
            await anyio.lowlevel.checkpoint()
            found.append(current_job())

    async def handler(_job_id: str) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(inner, 10)  # a child task of the worker loop
            tg.start_soon(inner, 0)
        found.append(await anyio.to_thread.run_sync(current_job))  # and its threads

    rec = Recorder(scheduler, [Event.JOB_COMPLETED])
    await scheduler.add_task("adeep", handler, run_once=True)
    [job] = await rec.wait_count(Event.JOB_COMPLETED, 1)
    assert len(found) == 3
    assert all(ctx is not None and ctx.job_id == job.id for ctx in found)
    assert current_job() is None


async def test_current_job_reports_the_retry_attempt(
    scheduler: AsyncQuiv, clock: FakeClock
) -> None:
    attempts: list[int] = []

    def handler() -> None:
        ctx = current_job()
        assert ctx is not None
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("again")

    rec = Recorder(scheduler, [Event.JOB_COMPLETED, Event.JOB_RETRYING])
    await scheduler.add_task("r", handler, run_once=True, max_retries=5, retry_backoff=1)
    await rec.wait_count(Event.JOB_RETRYING, 1)
    await clock.advance(1)
    await rec.wait_count(Event.JOB_RETRYING, 2)
    await clock.advance(2)
    await rec.wait_count(Event.JOB_COMPLETED, 1)
    assert attempts == [1, 2, 3]


async def test_two_jobs_see_their_own_context(scheduler: AsyncQuiv) -> None:
    barrier = threading.Barrier(2)
    ids: dict[str, str] = {}

    def handler(name: str, _job_id: str) -> None:
        barrier.wait(WAIT)  # both run at once
        ctx = current_job()
        assert ctx is not None
        ids[name] = ctx.job_id
        assert ctx.job_id == _job_id

    rec = Recorder(scheduler, [Event.JOB_COMPLETED])
    await scheduler.add_task("a", handler, run_once=True, args=("a",))
    await scheduler.add_task("b", handler, run_once=True, args=("b",))
    jobs = await rec.wait_count(Event.JOB_COMPLETED, 2)
    assert {j.task_name: j.id for j in jobs} == ids


def _generator() -> Any:
    yield 1


async def _async_generator() -> Any:
    yield 1


@pytest.mark.parametrize(
    "func",
    [_generator, _async_generator, functools.partial(_generator)],
    ids=["generator", "async generator", "partial of generator"],
)
async def test_generator_functions_are_not_handlers(scheduler: AsyncQuiv, func: Any) -> None:
    """Their body would never run: the job would 'complete' without doing anything."""
    rec = Recorder(scheduler, [Event.TASK_ADDED])
    with pytest.raises(HandlerRegistrationError, match="generator"):
        await scheduler.add_task("gen", func, interval=1)
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    await settle()
    assert rec.records == []
