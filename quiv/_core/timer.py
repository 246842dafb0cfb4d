"""A heap of deadlines with lazy deletion.

Pure and synchronous: it never reads a clock and imports nothing async, so it
can be tested (and property-tested) on its own. The scheduler's timer task
(:class:`~quiv._core.timing.Timer`) sleeps until its earliest deadline.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ("TimerEntry", "TimerHeap")

T = TypeVar("T")


class TimerEntry(Generic[T]):
    """One deadline in a :class:`TimerHeap`. Cancel it with :meth:`cancel`."""

    # Four slots, no more: a scheduler keeps one entry per waiting task.
    __slots__ = ("_heap", "deadline", "payload", "seq")

    def __init__(self, heap: TimerHeap[T], deadline: float, seq: int, payload: T) -> None:
        #: the heap while the entry waits in it; ``None`` once cancelled or popped
        self._heap: TimerHeap[T] | None = heap
        self.deadline = deadline
        self.seq = seq
        self.payload = payload

    def __lt__(self, other: TimerEntry[T]) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    @property
    def live(self) -> bool:
        """Whether the entry still waits in its heap (neither cancelled nor popped)."""
        return self._heap is not None

    def cancel(self) -> None:
        """Remove this entry (lazily: it is skipped when it reaches the top).

        Cancelling an entry that was already cancelled or popped does nothing.
        The entry lets go of its payload at once: it may wait in the heap until
        its deadline, and must not keep a removed task (with its handler and
        arguments) alive until then.
        """
        heap = self._heap
        if heap is not None:
            self._heap = None
            del self.payload
            heap._live -= 1
            heap._maybe_compact()

    def __repr__(self) -> str:
        state = "" if self.live else " done"
        payload = getattr(self, "payload", "(released)")
        return f"<TimerEntry deadline={self.deadline:.6f}{state} {payload!r}>"


class TimerHeap(Generic[T]):
    """Deadlines ordered by (deadline, insertion order).

    Entries with equal deadlines pop in insertion order, so the earliest due
    work always comes first and ties are fair.
    """

    def __init__(self) -> None:
        self._heap: list[TimerEntry[T]] = []
        self._seq = itertools.count()
        self._live = 0

    def __len__(self) -> int:
        """Number of live (not cancelled, not popped) entries."""
        return self._live

    def push(self, deadline: float, payload: T) -> TimerEntry[T]:
        """Add *payload* due at *deadline*; return its entry (for :meth:`TimerEntry.cancel`)."""
        if deadline != deadline:  # NaN would break the heap invariant
            raise ValueError("deadline must not be NaN")
        entry = TimerEntry(self, deadline, next(self._seq), payload)
        heapq.heappush(self._heap, entry)
        self._live += 1
        return entry

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or ``None`` when empty."""
        heap = self._heap
        while heap and heap[0]._heap is None:
            heapq.heappop(heap)
        return heap[0].deadline if heap else None

    def pop_due(self, now: float) -> Iterator[TimerEntry[T]]:
        """Yield (and remove) every live entry with ``deadline <= now``, earliest first.

        Entries pushed while iterating are considered too if they are due.
        """
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry._heap is None:  # cancelled
                heapq.heappop(heap)
                continue
            if entry.deadline > now:
                return
            heapq.heappop(heap)
            entry._heap = None
            self._live -= 1
            yield entry

    def entries(self) -> list[TimerEntry[T]]:
        """The live entries, earliest first (a copy; for inspection)."""
        return sorted(e for e in self._heap if e.live)

    def _maybe_compact(self) -> None:
        # Keep memory proportional to live entries when many are cancelled.
        heap = self._heap
        if len(heap) > 64 and self._live < len(heap) // 2:
            self._heap = [e for e in heap if e.live]
            heapq.heapify(self._heap)
