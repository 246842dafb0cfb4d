"""The floors: what the machine does with no scheduler at all, chosen by ``params["system"]``.

- ``floor-threads``: a bare ``ThreadPoolExecutor(10)``; each job is one
  ``submit`` of a no-op whose worker then posts one callback to the host
  loop (``call_soon_threadsafe``), which counts it. No scheduling, no
  records, no listeners: the least any scheduler that runs sync jobs off the
  loop and reports to it must do. W6 on this system is the floor of a
  cancel: one ``threading.Event`` set in one thread and seen in another. W9
  on this system is the server with no scheduler.
- ``floor-async``: one worker thread running its own asyncio loop; each job
  is one bare task there (``create_task`` of a no-op coroutine, handed over
  with ``call_soon_threadsafe``) whose completion is posted back to the host
  loop. The least a scheduler that keeps ``async def`` jobs off the host
  loop must do.

Standard library only. Run: ``python -m bench.runner_floor <workload> <params-json>``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    Countdown,
    Result,
    Unsupported,
    cancel_latency,
    cancel_phase,
    now,
    run_cli,
    throughput,
)

POOL_SIZE = 10


def _system(params: dict[str, Any], expected: str, workload: str) -> None:
    if params["system"] != expected:
        raise Unsupported(f"{workload} has no floor on {params['system']}")


async def _burst(
    n: int, submit: Callable[[], object], done: Countdown, params: dict[str, Any]
) -> Result:
    """Hand over *n* jobs with *submit* in a tight loop; wait for *done* to count them."""
    t0 = now()
    for _ in range(n):
        submit()
    t_added = now()
    await done.wait(params["limit_s"])
    return throughput(n, t0, t_added, done.t_done, done.count).na(
        "a floor keeps no history", "recorded"
    )


def w1(params: dict[str, Any]) -> Result:
    """Sync no-op jobs: pool submit, then one host-loop callback per job."""
    _system(params, "floor-threads", "W1")
    n = params["jobs"]

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        done = Countdown(n)

        def job() -> None:
            loop.call_soon_threadsafe(done.hit)

        with ThreadPoolExecutor(POOL_SIZE) as pool:
            return await _burst(n, lambda: pool.submit(job), done, params)

    return asyncio.run(main())


async def _noop() -> None:
    pass


def w2(params: dict[str, Any]) -> Result:
    """Async no-op jobs: bare tasks on one worker-thread loop, completions posted back."""
    _system(params, "floor-async", "W2")
    n = params["jobs"]

    async def main() -> Result:
        host = asyncio.get_running_loop()
        done = Countdown(n)
        worker = asyncio.new_event_loop()
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()

        def finished(_task: asyncio.Task[None]) -> None:
            host.call_soon_threadsafe(done.hit)

        def spawn() -> None:
            worker.create_task(_noop()).add_done_callback(finished)

        try:
            return await _burst(n, lambda: worker.call_soon_threadsafe(spawn), done, params)
        finally:
            worker.call_soon_threadsafe(worker.stop)
            thread.join(5)

    return asyncio.run(main())


def w6(params: dict[str, Any]) -> Result:
    """The floor of a sync cancel: set a ``threading.Event``, see another thread wake."""
    _system(params, "floor-threads", "W6")
    latencies: list[float] = []
    for _ in range(params["cancels"]):
        stop, woke = threading.Event(), [0.0]

        def waiter(stop: threading.Event = stop, woke: list[float] = woke) -> None:
            stop.wait(params["never_after"])
            woke[0] = now()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(cancel_phase())  # the waiter is blocked in wait() by now, as a handler is
        set_at = now()
        stop.set()
        thread.join(params["never_after"])
        latencies.append(woke[0] - set_at)
    result = cancel_latency(latencies, [], [], "a floor has no async jobs")
    return result.na("a floor has no events", "sync_event_p50_ms", "sync_event_p99_ms")


def w9(params: dict[str, Any]) -> Result:
    """The baseline of W9: the same server and load, and no scheduler at all."""
    _system(params, "floor-threads", "W9")
    from bench.w9 import serve_under_load

    return asyncio.run(serve_under_load(params, None, None))


if __name__ == "__main__":
    run_cli({"w1": w1, "w2": w2, "w6": w6, "w9": w9})
