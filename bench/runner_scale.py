"""W12, scale: W1 at growing burst sizes, chosen by ``params["system"]`` (our quiv only).

For each size (5,000, 50,000, 500,000 in a full run), a fresh scheduler
(``pool_size=10``, a private temporary store) gets that many run-once no-op
sync jobs in one burst, and the run waits for the last completion event.
The async faces add from their loop; ``quiv-sync`` adds from a plain thread
of its own (the sync face's ``add_task`` from another thread, as a request
handler in a thread pool calls it). Then ``stats()`` (which commits the
history first) checks that every job is recorded.

A warm-up run of a tenth of the smallest size comes first, unreported. Reported per
size: jobs/s (first add to last completion); the RSS growth with
every finished job in the history, per 100,000 jobs (RSS after a
``gc.collect()``, minus RSS before the scheduler started) and the growth of
the process's peak RSS over the run, both per 100,000 jobs; and job rows the
store wrote per job (1.00 when no row is written twice, e.g. once queued and
again finished: counted by wrapping the store's row builder, an internal).

Run: ``python -m bench.runner_scale w12 <params-json>`` in the project's venv.
"""

from __future__ import annotations

import gc
import resource
import threading
from typing import Any

import anyio
import anyio.to_thread

from bench.common import Result, now, rss_mb, run_cli
from bench.runner_quiv import Face, noop, open_face
from quiv import Event
from quiv._store import _sqlite

ROWS = [0]


def _count_rows() -> None:
    """Count every job row the SQLite store builds for a write (its only path to one)."""
    build = _sqlite.SQLiteStore._job_row

    def counted(self: Any, job: Any) -> Any:
        ROWS[0] += 1
        return build(self, job)

    _sqlite.SQLiteStore._job_row = counted  # type: ignore[method-assign]


class Ended:
    """Counts job ends (on the loop the listeners run on); wakes the waiter at *n*."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.t_last: float | None = None
        self.done = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        self._thread = threading.get_ident()

    def record(self, event: Event, task: Any, job: Any) -> None:
        self.count += 1
        if self.count == self.n:
            self.t_last = now()
            if threading.get_ident() == self._thread:
                self.done.set()
            else:
                anyio.from_thread.run_sync(self.done.set, token=self._token)


def _peak_mb() -> float:
    """The process's peak RSS so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_size(system: str, n: int, limit: float) -> dict[str, float | None]:
    gc.collect()
    rss0, peak0 = rss_mb(), _peak_mb()
    ROWS[0] = 0
    async with open_face(system) as face:
        ended = Ended(n)
        for event in (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED):
            await face.call("add_listener", event, ended.record)
        t0 = now()
        await add_burst(system, face, n)
        with anyio.move_on_after(limit):
            await ended.done.wait()
        recorded = (await face.call("stats")).job_history_count
        gc.collect()
        rss1 = rss_mb()
        rows = ROWS[0]
    rate = None if ended.t_last is None else n / (ended.t_last - t0)
    return {
        "rate": rate,
        "rss_per_100k": (rss1 - rss0) * 100_000 / n,
        # sizes grow tenfold, so each one's peak is above the last one's
        "peak_per_100k": (_peak_mb() - peak0) * 100_000 / n,
        "rows_per_job": rows / n,
        "recorded": recorded,
    }


async def add_burst(system: str, face: Face, n: int) -> None:
    scheduler = face.scheduler
    if system == "quiv-sync":

        def adds() -> None:  # from a thread that is not the scheduler's loop
            for _ in range(n):
                scheduler.add_task("job", noop, run_once=True)

        thread_done = anyio.Event()
        token = anyio.lowlevel.current_token()

        def run() -> None:
            try:
                adds()
            finally:
                anyio.from_thread.run_sync(thread_done.set, token=token)

        threading.Thread(target=run, daemon=True).start()
        await thread_done.wait()
        return
    for _ in range(n):
        await scheduler.add_task("job", noop, run_once=True)


def w12(params: dict[str, Any]) -> Result:
    system = params["system"]
    _count_rows()
    sizes: list[int] = params["sizes"]

    async def main() -> Result:
        # a first scheduler's start costs memory once (imports, SQLite, threads):
        # not the history's growth
        await one_size(system, max(1, sizes[0] // 10), params["limit_s"])
        result = Result()
        rates: dict[int, float | None] = {}
        for index, n in enumerate(sizes):
            found = await one_size(system, n, params["limit_s"] / len(sizes))
            rates[n] = found["rate"]
            key = ("small", "medium", "large")[index]
            result.set(
                **{
                    f"{key}_jobs_per_s": found["rate"],
                    f"{key}_rss_mb_per_100k": found["rss_per_100k"],
                    f"{key}_peak_mb_per_100k": found["peak_per_100k"],
                    f"{key}_rows_per_job": found["rows_per_job"],
                    f"{key}_recorded_share": (found["recorded"] or 0) / n,
                }
            )
        first, last = rates[sizes[0]], rates[sizes[-1]]
        if first and last:
            result.set(large_vs_small=last / first)
        else:
            result.na("a size did not complete in time", "large_vs_small")
        return result.note(f"sizes: {', '.join(f'{n:,}' for n in sizes)}")

    return anyio.run(main, backend="trio" if system == "quiv-async-trio" else "asyncio")


if __name__ == "__main__":
    run_cli({"w12": w12})
