"""TimerHeap: ordering, lazy cancellation, compaction (unit and property tests)."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiv._core.timer import TimerEntry, TimerHeap

deadlines = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from(
    [0.0, 1.0, 1.0, 2.0, math.inf, -math.inf]
)


def drain(heap: TimerHeap[int], now: float = math.inf) -> list[int]:
    return [entry.payload for entry in heap.pop_due(now)]


def test_empty_heap() -> None:
    heap: TimerHeap[int] = TimerHeap()
    assert len(heap) == 0
    assert heap.next_deadline() is None
    assert drain(heap) == []
    assert heap.entries() == []


def test_pops_in_deadline_order_and_ties_in_insertion_order() -> None:
    heap: TimerHeap[int] = TimerHeap()
    for payload, deadline in enumerate([5.0, 1.0, 3.0, 1.0, 5.0, 0.5]):
        heap.push(deadline, payload)
    assert heap.next_deadline() == 0.5
    assert drain(heap) == [5, 1, 3, 2, 0, 4]
    assert len(heap) == 0


def test_pop_due_stops_at_now_inclusive() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.push(1.0, "a")
    heap.push(2.0, "b")
    heap.push(2.000001, "c")
    assert [e.payload for e in heap.pop_due(2.0)] == ["a", "b"]
    assert heap.next_deadline() == 2.000001
    assert len(heap) == 1


def test_popped_entries_leave_the_heap_and_cannot_be_cancelled_twice() -> None:
    heap: TimerHeap[str] = TimerHeap()
    entry = heap.push(1.0, "a")
    assert [e.payload for e in heap.pop_due(1.0)] == ["a"]
    entry.cancel()  # already popped: no effect on the live count
    assert len(heap) == 0
    heap.push(3.0, "b")
    assert len(heap) == 1


def test_cancel_is_lazy_and_idempotent() -> None:
    heap: TimerHeap[str] = TimerHeap()
    first = heap.push(1.0, "a")
    heap.push(2.0, "b")
    first.cancel()
    first.cancel()
    assert not first.live
    assert len(heap) == 1
    assert heap.next_deadline() == 2.0
    assert [e.payload for e in heap.entries()] == ["b"]
    assert drain(heap) == ["b"]


def test_entries_pushed_while_popping_are_yielded_if_due() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.push(1.0, "a")
    heap.push(10.0, "late")
    seen = []
    for entry in heap.pop_due(5.0):
        seen.append(entry.payload)
        if entry.payload == "a":
            heap.push(2.0, "pushed-due")
            heap.push(6.0, "pushed-later")
    assert seen == ["a", "pushed-due"]
    assert [e.payload for e in heap.entries()] == ["pushed-later", "late"]


def test_cancel_while_popping_skips_the_entry() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.push(1.0, "a")
    later = heap.push(2.0, "b")
    heap.push(3.0, "c")
    seen = []
    for entry in heap.pop_due(5.0):
        seen.append(entry.payload)
        if entry.payload == "a":
            later.cancel()
    assert seen == ["a", "c"]
    assert len(heap) == 0


def test_nan_deadline_is_refused() -> None:
    heap: TimerHeap[str] = TimerHeap()
    with pytest.raises(ValueError, match="NaN"):
        heap.push(math.nan, "x")
    assert len(heap) == 0


def test_infinite_deadlines_are_ordered() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.push(math.inf, "never")
    heap.push(-math.inf, "always")
    heap.push(0.0, "zero")
    assert [e.payload for e in heap.pop_due(1e300)] == ["always", "zero"]
    assert heap.next_deadline() == math.inf


def test_compaction_bounds_memory_and_keeps_order() -> None:
    heap: TimerHeap[int] = TimerHeap()
    entries = [heap.push(float(i % 97), i) for i in range(10_000)]
    for entry in entries:
        if entry.payload % 10:
            entry.cancel()
    assert len(heap) == 1000
    # Lazy deletion must not keep the cancelled 90 % around forever.
    assert len(heap._heap) <= 2 * len(heap) + 64
    expected = sorted((e.deadline, e.seq, e.payload) for e in entries if e.live)
    assert drain(heap) == [payload for _, _, payload in expected]


def test_a_20000_entry_heap_with_churn() -> None:
    heap: TimerHeap[int] = TimerHeap()
    entries = {i: heap.push(float((i * 7919) % 20_000), i) for i in range(20_000)}
    for i in range(0, 20_000, 2):
        entries[i].cancel()
        entries[i] = heap.push(float(i), i)  # rescheduled
    assert len(heap) == 20_000
    out = list(heap.pop_due(math.inf))
    assert len(out) == 20_000
    assert [(e.deadline, e.seq) for e in out] == sorted((e.deadline, e.seq) for e in out)


def test_repr_mentions_deadline_and_state() -> None:
    heap: TimerHeap[str] = TimerHeap()
    entry = heap.push(1.5, "x")
    assert "1.500000" in repr(entry)
    entry.cancel()
    assert "done" in repr(entry)


# -- properties ----------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), deadlines),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=500)),
        st.tuples(st.just("pop"), deadlines),
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_behaves_like_a_sorted_list_model(operations: list[tuple[str, float]]) -> None:
    """Pushes, cancels and pops agree with a naive model sorted by (deadline, insertion)."""
    heap: TimerHeap[int] = TimerHeap()
    model: dict[int, tuple[float, int]] = {}  # payload -> (deadline, insertion)
    pushed: list[TimerEntry[int]] = []
    for op, arg in operations:
        if op == "push":
            payload = len(pushed)
            pushed.append(heap.push(arg, payload))
            model[payload] = (arg, payload)
        elif op == "cancel":
            if pushed:
                index = int(arg) % len(pushed)
                pushed[index].cancel()
                model.pop(index, None)  # an entry's payload is its index in pushed
        else:
            got = [e.payload for e in heap.pop_due(arg)]
            due = sorted((v, p) for p, v in model.items() if v[0] <= arg)
            assert got == [p for _, p in due]
            for p in got:
                del model[p]
        assert len(heap) == len(model)
        expected_next = min((v for v in model.values()), default=None)
        assert heap.next_deadline() == (None if expected_next is None else expected_next[0])
        assert [e.payload for e in heap.entries()] == [
            p for _, p in sorted((v, p) for p, v in model.items())
        ]
    assert drain(heap) == [p for _, p in sorted((v, p) for p, v in model.items())]


@settings(max_examples=100, deadline=None)
@given(st.lists(deadlines, min_size=65, max_size=400), st.data())
def test_compaction_keeps_pop_order(values: list[float], data: st.DataObject) -> None:
    """Cancelling most entries (which compacts the heap) leaves the survivors' order intact."""
    heap: TimerHeap[int] = TimerHeap()
    entries = [heap.push(v, i) for i, v in enumerate(values)]
    keep = data.draw(st.sets(st.integers(0, len(values) - 1), max_size=len(values) // 3))
    for entry in entries:
        if entry.payload not in keep:
            entry.cancel()
    assert len(heap._heap) <= max(64, 2 * len(keep) + 1)
    expected = sorted((values[i], i) for i in keep)
    assert drain(heap) == [i for _, i in expected]


def test_a_cancelled_entry_lets_go_of_its_payload() -> None:
    """A cancelled entry may wait in the heap until its deadline; its payload must not."""

    class Payload:
        pass

    heap: TimerHeap[Payload] = TimerHeap()
    payload = Payload()
    ref = weakref.ref(payload)
    entry = heap.push(1000.0, payload)
    heap.push(2000.0, Payload())  # keeps the cancelled entry inside the heap's list
    entry.cancel()
    del payload
    gc.collect()
    assert ref() is None
    assert "released" in repr(entry)
    assert [e.deadline for e in heap.entries()] == [2000.0]
