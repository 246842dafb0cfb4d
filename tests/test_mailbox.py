"""The cross-thread hand-off (Mailbox) and the settle-once future (Future), on both backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
import sniffio
from anyio.lowlevel import current_token

from quiv._xthread.mailbox import Future, Mailbox

pytestmark = pytest.mark.anyio

WAIT = 10


class Fault(Exception):
    pass


class CountingMailbox(Mailbox):
    """A drain-task mailbox that counts the wake-ups delivered to its loop."""

    __slots__ = ("wakes",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.wakes = 0
        super().__init__(*args, **kwargs)

    def _set_event(self) -> None:
        self.wakes += 1
        super()._set_event()


def _in_a_thread(work: Callable[[], object]) -> None:
    """Run *work* in another thread and wait for it, blocking the loop meanwhile.

    The loop runs no callback until it returns, so every wake-up the work posts
    is still pending then: a burst looks to the mailbox as it would from a
    thread that outruns the loop.
    """
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()


class Drain:
    """A drain task taking batches from *box* until it gets ``None``."""

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.batches: list[list[Any]] = []
        self.items: list[Any] = []
        self.changed = anyio.Event()

    async def run(self) -> None:
        while True:
            await self.box.wait()
            batch = self.box.take_all()
            if batch:
                self.batches.append(batch)
                self.items.extend(batch)
                self.changed.set()
                self.changed = anyio.Event()
                if batch[-1] is None:
                    return
            await anyio.lowlevel.checkpoint()

    async def until(self, count: int) -> None:
        with anyio.fail_after(WAIT):
            while len(self.items) < count:
                await self.changed.wait()


# -- Mailbox, drained by a task ----------------------------------------------------------


async def test_a_burst_costs_one_wake_up_and_arrives_in_order() -> None:
    box = CountingMailbox(current_token())
    drain = Drain(box)
    async with anyio.create_task_group() as tg:
        tg.start_soon(drain.run)
        await anyio.wait_all_tasks_blocked()  # the drain task waits for a wake-up

        _in_a_thread(lambda: [box.put(i) for i in range(1000)])
        await drain.until(1000)
        assert box.wakes == 1
        assert drain.batches == [list(range(1000))]

        await anyio.wait_all_tasks_blocked()
        _in_a_thread(lambda: [box.put(i) for i in range(1000, 1010)])
        await drain.until(1010)
        assert box.wakes == 2
        assert drain.batches[1] == list(range(1000, 1010))
        assert box.handed == 1010
        box.put(None)
    assert drain.items[-1] is None


async def test_puts_from_many_threads_all_arrive_each_in_its_order() -> None:
    box = Mailbox(current_token())
    drain = Drain(box)
    threads, per_thread = 8, 500

    def produce(n: int) -> None:
        for i in range(per_thread):
            box.put((n, i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain.run)
        workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        await drain.until(threads * per_thread)
        for worker in workers:
            worker.join(WAIT)
        box.put(None)
    for n in range(threads):
        assert [i for m, i in drain.items[:-1] if m == n] == list(range(per_thread))


async def test_a_put_on_the_loop_thread_wakes_the_task_without_the_loop() -> None:
    box = CountingMailbox(current_token(), loop_thread=threading.get_ident())
    drain = Drain(box)
    async with anyio.create_task_group() as tg:
        tg.start_soon(drain.run)
        await anyio.wait_all_tasks_blocked()
        box.put("here")
        assert box.wakes == 1  # already: no callback went through the loop
        await drain.until(1)
        box.put(None)
    assert drain.items == ["here", None]


async def test_a_closed_mailbox_refuses_puts_and_keeps_what_it_holds() -> None:
    box = Mailbox(current_token(), refused=lambda: Fault("closed"))
    box.put(1)
    box.close()
    with pytest.raises(Fault, match="closed"):
        box.put(2)
    with pytest.raises(Fault, match="closed"):
        box.put_pair(2, 3)
    assert not box.claim_idle()
    assert box.take_all() == [1]
    assert box.pop() is None


def test_a_mailbox_without_a_loop_is_closed_until_opened() -> None:
    box = Mailbox()
    with pytest.raises(RuntimeError):
        box.put(1)
    assert box.closed


async def test_claim_idle_only_while_the_drain_task_waits_on_an_empty_mailbox() -> None:
    box = Mailbox(current_token())
    assert not box.claim_idle()  # no drain task waits yet
    drain = Drain(box)
    async with anyio.create_task_group() as tg:
        tg.start_soon(drain.run)
        await anyio.wait_all_tasks_blocked()
        assert box.claim_idle()
        assert box.handed == 1
        box.put(None)
        assert not box.claim_idle()  # something is queued, and a wake-up is on its way


async def test_put_reports_a_loop_that_has_finished() -> None:
    backend = sniffio.current_async_library()

    def finished_loop() -> Any:
        async def token() -> Any:
            return current_token()

        return anyio.run(token, backend=backend)

    token = await anyio.to_thread.run_sync(finished_loop)
    box = Mailbox(token, wake=lambda: None)
    assert box.put(1) is False  # the wake-up could not be posted; the item stays
    assert box.take_all() == [1]
    strict = Mailbox(token, wake=lambda: None, refused=lambda: Fault("gone"), raise_if_lost=True)
    with pytest.raises(Fault, match="gone"):
        strict.put_pair(print, 1)


# -- Mailbox, drained by a callback ------------------------------------------------------


async def test_pairs_run_in_order_with_one_wake_up_per_batch() -> None:
    wakes: list[int] = []
    ran: list[Any] = []
    done = anyio.Event()

    def wake() -> None:
        wakes.append(1)
        box.run_pairs()

    def record(arg: Any) -> None:
        ran.append(arg)
        if arg == "last":
            done.set()

    box = Mailbox(current_token(), wake=wake)
    _in_a_thread(lambda: [box.put_pair(record, i) for i in range(500)])
    box.put_pair(record, "last")  # the loop thread: a pending wake-up takes it too
    with anyio.fail_after(WAIT):
        await done.wait()
    assert ran == [*range(500), "last"]
    assert len(wakes) == 1


async def test_a_raising_pair_leaves_nothing_queued() -> None:
    errors: list[BaseException] = []
    ran: list[Any] = []
    done = anyio.Event()

    def wake() -> None:  # as a loop would, report the error and go on
        try:
            box.run_pairs()
        except Fault as exc:
            errors.append(exc)

    def broken(arg: Any) -> None:
        raise Fault(arg)

    def record(arg: Any) -> None:
        ran.append(arg)
        if arg == 2:
            done.set()

    box = Mailbox(current_token(), wake=wake)

    def burst() -> None:
        box.put_pair(broken, 0)
        box.put_pair(record, 1)
        box.put_pair(record, 2)

    _in_a_thread(burst)
    with anyio.fail_after(WAIT):
        await done.wait()
    assert ran == [1, 2]
    assert [str(exc) for exc in errors] == ["0"]

    done = anyio.Event()
    box.put_pair(record, 2)  # and the mailbox wakes its loop again
    with anyio.fail_after(WAIT):
        await done.wait()
    assert ran == [1, 2, 2]


async def test_a_closed_pair_mailbox_still_runs_what_it_took_when_drained_at_once() -> None:
    ran: list[Any] = []
    box = Mailbox(current_token(), wake=lambda: box.run_pairs(), refused=lambda: Fault("no"))
    box.put_pair(ran.append, 1)  # its wake-up is pending: the loop has not run yet
    box.close()
    with pytest.raises(Fault):
        box.put_pair(ran.append, 2)
    box.run_pairs()
    assert ran == [1]
    await anyio.wait_all_tasks_blocked()  # the pending wake-up finds nothing left
    assert ran == [1]


# -- Future ------------------------------------------------------------------------------


def _waiting_threads(future: Future[Any], count: int) -> tuple[list[threading.Thread], list[Any]]:
    outcomes: list[Any] = []

    def wait() -> None:
        try:
            outcomes.append(future.wait())
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)


def test_a_future_wakes_every_waiting_thread_and_stays_settled() -> None:
    future: Future[int] = Future()
    threads, outcomes = _waiting_threads(future, 3)
    assert future.set_result(7)
    _join(threads)
    assert outcomes == [7, 7, 7]
    assert future.done and future.wait() == 7 and future.result() == 7
    assert not future.set_exception(KeyError("ignored"))  # settled once
    assert not future.set_result(8)
    assert future.wait() == 7


def test_a_future_delivers_its_exception_to_every_waiting_thread() -> None:
    future: Future[int] = Future()
    threads, outcomes = _waiting_threads(future, 2)
    error = Fault("boom")
    assert future.set_exception(error)
    _join(threads)
    assert outcomes == [error, error]
    assert not future.set_result(1)
    with pytest.raises(Fault, match="boom"):
        future.result()


def test_done_callbacks_run_once_in_the_settling_thread_or_at_once() -> None:
    future: Future[None] = Future()
    seen: list[tuple[str, int]] = []
    future.add_done_callback(lambda: seen.append(("before", threading.get_ident())))
    settler = threading.Thread(target=future.set_result, args=(None,))
    settler.start()
    _join([settler])
    future.set_result(None)
    assert seen == [("before", settler.ident)]
    future.add_done_callback(lambda: seen.append(("after", threading.get_ident())))
    assert seen[1] == ("after", threading.get_ident())


async def test_a_future_settled_by_another_thread_wakes_a_waiting_loop() -> None:
    future: Future[str] = Future()
    errored: Future[str] = Future()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, future.set_result, "value")
        tg.start_soon(anyio.to_thread.run_sync, errored.set_exception, Fault("bad"))
        with anyio.fail_after(WAIT):
            await future.wait_settled()
            await errored.wait_settled()  # waiting does not raise
    assert future.result() == "value"
    with pytest.raises(Fault, match="bad"):
        errored.result()


async def test_a_future_settled_on_the_waiting_loop_wakes_it() -> None:
    future: Future[int] = Future()

    async def settle() -> None:
        future.set_result(3)

    async with anyio.create_task_group() as tg:
        tg.start_soon(settle)
        with anyio.fail_after(WAIT):
            await future.wait_settled()
    assert future.result() == 3
    with anyio.fail_after(WAIT):
        await future.wait_settled()  # settled: at once


async def test_cancel_target_before_and_after_the_target_binds_its_scope() -> None:
    early: Future[None] = Future()
    early.cancel_target("early")
    with anyio.CancelScope() as scope:
        early.bind_scope(scope)
        await anyio.sleep_forever()
    assert scope.cancelled_caught and early.cancel_reason == "early"

    late: Future[None] = Future()
    async with anyio.create_task_group() as tg:

        async def target() -> None:
            with anyio.CancelScope() as scope:
                late.bind_scope(scope)
                await anyio.sleep_forever()
            late.set_result(None)

        tg.start_soon(target)
        await anyio.wait_all_tasks_blocked()
        late.cancel_target("late")
        late.cancel_target("again")  # the first reason stays
    assert late.done and late.cancel_reason == "late"
