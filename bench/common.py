"""What every runner shares: the command line, the result line, measurements.

Runners are ``python -m bench.runner_<family> <workload> <params-json>``. A
runner prints exactly one line ``BENCH_RESULT {json}`` and exits. The JSON
is ``{"ok": true, "metrics": {...}, "reasons": {...}, "notes": [...]}`` or
``{"ok": false, "error": "..."}``. A metric that a system cannot produce is
``null`` with a reason; a reason starting with ``never`` renders as "never".

Stdlib (plus psutil) only: this module is imported in every venv.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, NoReturn

from bench.stats import ms_summary

RESULT_PREFIX = "BENCH_RESULT "

now = time.perf_counter


class Result:
    """What one workload run found."""

    def __init__(self) -> None:
        self.metrics: dict[str, float | None] = {}
        self.reasons: dict[str, str] = {}
        self.notes: list[str] = []

    def set(self, **values: float | None) -> Result:
        self.metrics.update(values)
        return self

    def na(self, reason: str, *keys: str) -> Result:
        for key in keys:
            self.metrics[key] = None
            self.reasons[key] = reason
        return self

    def note(self, text: str) -> Result:
        self.notes.append(text)
        return self

    def payload(self) -> dict[str, Any]:
        return {"ok": True, "metrics": self.metrics, "reasons": self.reasons, "notes": self.notes}


class Unsupported(Exception):
    """The system has no way to run this workload; the message says why."""


def unsupported(reason: str) -> Callable[[dict[str, Any]], Result]:
    """A workload entry for a feature the system lacks."""

    def run(params: dict[str, Any]) -> Result:
        raise Unsupported(reason)

    return run


def emit(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def run_cli(workloads: Mapping[str, Callable[[dict[str, Any]], Result]]) -> NoReturn:
    """Entry point of a runner module: run one workload, print one line, exit.

    Exits with ``os._exit`` so a peer's stuck worker thread cannot hold the
    process (the measurement is over by then).
    """
    code = 0
    try:
        workload, raw = sys.argv[1], sys.argv[2]
        if workload not in workloads:
            raise Unsupported(f"unknown workload {workload!r}")
        emit(workloads[workload](json.loads(raw)).payload())
    except Unsupported as exc:
        emit({"ok": True, "unsupported": str(exc), "metrics": {}, "reasons": {}, "notes": []})
    except BaseException as exc:
        traceback.print_exc()
        emit({"ok": False, "error": _first_line(exc)})
        code = 1
    sys.stderr.flush()
    os._exit(code)


def watchdog(outcome: Result | BaseException, seconds: float) -> threading.Timer:
    """Publish *outcome* and exit if the scheduler's teardown takes over *seconds*.

    Start it when the measurement is over (or failed); cancel it after a
    clean teardown.
    """

    def fire() -> None:
        late = f"scheduler teardown did not finish within {seconds:g} s"
        if isinstance(outcome, Result):
            emit(outcome.note(late).payload())
        else:
            emit({"ok": False, "error": f"{_first_line(outcome)} (and {late})"})
        os._exit(0)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


# -- process measurements ------------------------------------------------------


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


def cpu_seconds() -> float:
    """CPU time of the whole process (all threads), at nanosecond resolution."""
    return time.process_time()


# -- workload helpers ----------------------------------------------------------


def w3_delays(params: Mapping[str, Any]) -> list[float]:
    """The same pseudo-random delays for every system."""
    rng = random.Random(params["seed"])
    return [rng.uniform(params["min_delay"], params["max_delay"]) for _ in range(params["jobs"])]


def throughput(n: int, t0: float, t_added: float, t_done: float | None, completed: int) -> Result:
    """W1/W2 metrics from the add start, the add end and the last completion."""
    result = Result().set(add_s=t_added - t0, completed=completed)
    if t_done is None or completed < n:
        return result.na(f"timed out: {completed}/{n} completed", "jobs_per_s", "total_s")
    return result.set(jobs_per_s=n / (t_done - t0), total_s=t_done - t0)


def lateness(intended: Mapping[int, float], started: Mapping[int, float]) -> Result:
    """W3 metrics: handler start minus intended start, per job."""
    late = [started[i] - intended[i] for i in intended if i in started]
    result = Result().set(started=len(late))
    if not late:
        return result.na("no job started", "late_p50_ms", "late_p99_ms", "late_max_ms")
    result.set(**ms_summary(late, "late"))
    if len(late) < len(intended):
        result.note(f"only {len(late)}/{len(intended)} jobs started in time")
    return result


def cadence(
    starts: Mapping[int, list[float]], added: Mapping[int, float], params: Mapping[str, Any]
) -> Result:
    """W4 metrics: runs started in each task's window, and drift of the last one.

    Task *i*'s window is ``[added_i, added_i + duration)``; drift is
    ``last − first − (runs − 1) · interval``: the time a task lost against its
    own grid over the window (0 for a perfect fixed-interval scheduler).
    """
    interval, duration = params["interval"], params["duration"]
    runs: list[int] = []
    drifts: list[float] = []
    for i, t_add in added.items():
        inside = sorted(t for t in starts.get(i, []) if t_add <= t < t_add + duration)
        runs.append(len(inside))
        if len(inside) >= 2:
            drifts.append(abs(inside[-1] - inside[0] - (len(inside) - 1) * interval))
    result = Result().set(
        runs_min=min(runs),
        runs_median=statistics.median(runs),
        runs_max=max(runs),
        ideal_runs=round(duration / interval),
    )
    if not drifts:
        return result.na("fewer than 2 runs per task", "drift_ms", "drift_max_ms")
    return result.set(
        drift_ms=statistics.median(drifts) * 1000.0, drift_max_ms=max(drifts) * 1000.0
    )


_PHASE = random.Random(11)


def cancel_phase() -> float:
    """A random pause between a W6 job's start and its cancel (2-6 ms).

    So the cancel lands at a random point of the job's 1 ms check period,
    not always just after the job started.
    """
    return _PHASE.uniform(0.002, 0.006)


def cancel_latency(
    sync_stop: list[float],
    sync_event: list[float],
    async_stop: list[float],
    async_never: str | None,
) -> Result:
    """W6 metrics from the latencies (seconds) measured per cancel."""
    result = Result()
    for values, prefix in ((sync_stop, "sync_stop"), (sync_event, "sync_event")):
        keys = (f"{prefix}_p50_ms", f"{prefix}_p99_ms")
        if values:
            summary = ms_summary(values, prefix)
            result.set(**{key: summary[key] for key in keys})
        else:
            result.na("no cancel completed", *keys)
    keys = ("async_stop_p50_ms", "async_stop_p99_ms", "async_stop_max_ms")
    if async_never is not None:
        result.na(async_never, *keys)
    elif async_stop:
        result.set(**ms_summary(async_stop, "async_stop"))
    else:
        result.na("no cancel completed", *keys)
    return result


class Progress:
    """W7 receiver: counts deliveries, checks their order, notes the last one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.expected = 0
        self.in_order = True
        self.t_first_call: float | None = None
        self.t_calls_done: float | None = None
        self.t_last: float | None = None

    def produce(self, hook: Callable[..., Any]) -> None:
        """The job side: call *hook* ``n`` times with ``i=0..n-1``."""
        self.t_first_call = now()
        for i in range(self.n):
            hook(i=i)
        self.t_calls_done = now()

    def receive(self, i: int) -> bool:
        """The main-loop side; return ``True`` at the last expected delivery."""
        if i != self.expected:
            self.in_order = False
        self.expected = i + 1
        self.count += 1
        self.t_last = now()
        return self.count == self.n

    def result(self) -> Result:
        result = Result().set(dropped=self.n - self.count, order_kept=int(self.in_order))
        if self.t_first_call is None:
            return result.na("the job never ran", "delivered_per_s", "producer_per_s")
        if self.t_calls_done is not None:
            result.set(producer_per_s=self.n / (self.t_calls_done - self.t_first_call))
        else:
            result.na("the job did not finish its calls", "producer_per_s")
        if self.t_last is None or self.count == 0:
            return result.na("nothing delivered", "delivered_per_s")
        return result.set(delivered_per_s=self.count / (self.t_last - self.t_first_call))


class Paired(NamedTuple):
    """Round trips of a call against a floor, timed in the same windows."""

    #: seconds per call of the measured call, and of the floor (means)
    call_s: float
    floor_s: float
    #: median over adjacent window pairs of call time / floor time
    ratio: float


def paired_round_trips(
    call: Callable[[], Any], floor: Callable[[], Any], n: int, window: int = 100
) -> Paired:
    """Time *n* calls of *call* and *n* of *floor* from this thread, interleaved.

    The two run in alternating windows of *window* calls (A B, B A, A B, …), so
    both see the same conditions: on a 2-core machine a cross-thread round trip
    costs ~3x more when the OS places the two threads on different cores than
    on one, the placement changes every few hundred ms, and two runs timed one
    after the other can differ by that much on their own. Interleaving also
    puts the floor under the same background work (the scheduler recording the
    job's start, other processes). The ratio is the median over the window
    pairs (each pair ~2 windows back to back), so a burst of outside work that
    lands in one window does not swing it.
    """
    spent = [0.0, 0.0]
    ratios: list[float] = []
    pair = ((0, call), (1, floor))
    sizes = [window] * (n // window) + ([n % window] if n % window else [])
    for i, size in enumerate(sizes):
        times = [0.0, 0.0]
        for slot, func in pair if i % 2 == 0 else pair[::-1]:
            t0 = now()
            for _ in range(size):
                func()
            times[slot] = now() - t0
        spent[0] += times[0]
        spent[1] += times[1]
        ratios.append(times[0] / times[1])
    return Paired(spent[0] / n, spent[1] / n, statistics.median(ratios))


def noop() -> None:
    """The no-op target used for round trips."""


# -- asyncio-hosted peers --------------------------------------------------------


class JobEnds:
    """When each job's end event arrived (from any thread), for an asyncio host."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._changed = asyncio.Event()

    def record(self, job_id: str) -> None:
        self.times.setdefault(job_id, now())
        if threading.get_ident() == self._loop_thread:
            self._changed.set()
        else:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, job_id: str, timeout: float) -> float | None:
        """The time *job_id* ended, or ``None`` if it did not within *timeout*."""
        deadline = now() + timeout
        while job_id not in self.times:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - now()))
            except asyncio.TimeoutError:
                return self.times.get(job_id)
        return self.times[job_id]


class Countdown:
    """Counts completions reported from any thread; wakes an asyncio loop at *n*."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.failed = 0
        self.t_done: float | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._done = asyncio.Event()

    def hit(self, failed: bool = False) -> None:
        with self._lock:
            self.count += 1
            self.failed += failed
            if self.count != self.n:
                return
            self.t_done = now()
        if threading.get_ident() == self._loop_thread:
            self._done.set()
        else:
            self._loop.call_soon_threadsafe(self._done.set)

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


async def idle_tail(
    sleep: Callable[[float], Awaitable[Any]],
    params: Mapping[str, Any],
    result: Result,
    rss_before: float,
) -> None:
    """W5's tail: settle, measure CPU over an idle window, then RSS growth.

    RSS is read after the window (and a ``gc.collect()``), so work a system
    defers past ``add_task`` is counted too.
    """
    await sleep(params["settle"])
    cpu0 = cpu_seconds()
    await sleep(params["idle"])
    result.set(idle_cpu_ms=(cpu_seconds() - cpu0) * 1000.0)
    gc.collect()
    result.set(rss_mb_per_10k=(rss_mb() - rss_before) * 10000.0 / params["tasks"])


def rss_baseline() -> float:
    """RSS before W5 adds anything (after a ``gc.collect()``)."""
    gc.collect()
    return rss_mb()


# -- W11: cron tasks -------------------------------------------------------------


def cron_mix(n: int, hour_now: int) -> list[str]:
    """W11's *n* cron expressions (5 fields, read in UTC), the same for every system.

    A realistic mix, by ``i % 10``: 7 in 10 daily at a fixed time
    (``"m h * * *"``), 1 on weekdays (``"m h * * MON-FRI"``, by name, as
    APScheduler's ``from_crontab`` reads day numbers its own way), 1 every
    15 minutes within one hour (``"*/15 h * * *"``, not fixed-time) and 1
    monthly (``"m h 1 * *"``). Minutes cycle 0-59; hours cycle over the 22
    hours that are neither *hour_now* (UTC) nor the next, so nothing is due
    while the workload runs. Expressions repeat (1,210 distinct ones in
    10,000; 917 in 1,000), as they do in real apps.
    """
    out: list[str] = []
    for i in range(n):
        minute = i % 60
        hour = (hour_now + 2 + (i // 60) % 22) % 24
        kind = i % 10
        if kind == 7:
            out.append(f"{minute} {hour} * * MON-FRI")
        elif kind == 8:
            out.append(f"*/15 {hour} * * *")
        elif kind == 9:
            out.append(f"{minute} {hour} 1 * *")
        else:
            out.append(f"{minute} {hour} * * *")
    return out


#: W11 firing phase: (phase, task index, wall time the handler started)
FIRES: list[tuple[str, int, float]] = []


def fire(phase: str, i: int) -> None:
    """W11's firing handler (sync: runs in each system's thread pool)."""
    FIRES.append((phase, i, time.time()))


def fire_window(lead: float = 2.0) -> float:
    """The first whole wall second at least *lead* seconds from now (W11's window start)."""
    return float(int(time.time() + lead) + 1)


async def until_wall(sleep: Callable[[float], Awaitable[Any]], wall: float) -> None:
    """Sleep until the wall clock reads *wall*."""
    while (left := wall - time.time()) > 0:
        await sleep(left)


#: how early a W11 fire may start and still be matched to its own second (s)
EARLY = 0.01


def fire_lateness(
    result: Result, phase: str, prefix: str, start: float, params: Mapping[str, Any]
) -> Result:
    """W11 lateness of one phase: handler start − the whole second it was due.

    Every task of the phase fires each whole wall second; a start at wall
    time *t* was due at ``floor(t + EARLY)`` (lateness stays far below a
    second), so a fire up to ``EARLY`` before its second shows as negative
    lateness and is counted in ``<phase>_early`` (a scheduler should never
    fire early). Only fires due in ``[start, start + fire_for)`` count;
    ideally each of the ``firing`` tasks fires ``fire_for`` times in it.
    """
    end = start + params["fire_for"]
    due = [(t, float(int(t + EARLY))) for p, _, t in FIRES if p == phase]
    late = [t - d for t, d in due if start <= d < end]
    keys = [f"{prefix}_p50_ms", f"{prefix}_p99_ms", f"{prefix}_max_ms"]
    result.set(**{f"{phase}_fires": len(late), f"{phase}_early": sum(x < 0 for x in late)})
    if not late:
        return result.na("nothing fired", *keys)
    summary = ms_summary(late, prefix)
    return result.set(**{key: summary[key] for key in keys})


async def cron_workload(
    params: Mapping[str, Any],
    sleep: Callable[[float], Awaitable[Any]],
    add_cron: Callable[[str], Awaitable[Any]],
    add_tick: Callable[[int, float], Awaitable[Any]],
    add_every_second: Callable[[int], Awaitable[Any]],
    remove: Callable[[Any], Awaitable[Any]],
) -> Result:
    """W11, the same steps for every system; the callables are its API.

    *add_cron(expr)* adds an idle cron task (handler ``noop``);
    *add_tick(i, first)* adds an interval task every 1 s whose first run is at
    wall time *first*, and *add_every_second(i)* a cron task firing every
    second, both with handler ``fire(phase, i)``; each returns what
    *remove* takes.

    1. Add one cron task (importing the cron library is not a per-task cost),
       then ``tasks`` cron tasks (:func:`cron_mix`): add rate. Then W5's idle
       tail: CPU over an idle window, RSS growth per 10,000 tasks.
    2. With those still there, ``firing`` interval tasks every 1 s on the
       whole wall seconds (the control), for ``fire_for`` seconds; removed.
    3. Then ``firing`` cron tasks every second (``"* * * * * *"``), for
       ``fire_for`` seconds. Lateness of both: handler start − due second.
    """
    n, firing, fire_for = params["tasks"], params["firing"], params["fire_for"]
    expressions = cron_mix(n, time.gmtime().tm_hour)
    # One cron task first, outside the measurement, as W5 adds its tasks to a
    # scheduler that has run: importing the cron library is a one-time cost,
    # not a per-task one.
    await add_cron("0 0 1 1 *")
    rss0 = rss_baseline()
    t0 = now()
    for expr in expressions:
        await add_cron(expr)
    result = Result().set(add_per_s=n / (now() - t0), expressions=len(set(expressions)))
    await idle_tail(sleep, params, result, rss0)

    start = fire_window()
    ticks = [await add_tick(i, start) for i in range(firing)]
    await until_wall(sleep, start + fire_for + 0.5)
    for handle in ticks:
        await remove(handle)
    fire_lateness(result, "interval", "interval_late", start, params)

    start = fire_window()
    for i in range(firing):
        await add_every_second(i)
    await until_wall(sleep, start + fire_for + 0.5)
    fire_lateness(result, "cron", "late", start, params)
    return result.set(ideal_fires=firing * fire_for)
