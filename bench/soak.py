"""Soak: a mixed workload on one AsyncQuiv for a given time, watched in windows.

Run ``uv run python -m bench.soak --duration 120`` (see bench/README.md,
"Soak"). Not part of the test suite or of CI.

The workload, all at once:

* recurring tasks (sync, async, with progress, fixed and free intervals,
  one with jitter) every 0.05-1 s;
* a stream of run-once jobs added at ``--rate`` per second with a delay
  uniform in [0, 0.5] s: quick sync and async jobs, failing jobs (some
  retried once), jobs that time out (sync and async), jobs cancelled by
  ``cancel_job`` while they run, tasks removed before they are due, jobs
  streaming progress to the main loop.

Every ``--window`` seconds it prints jobs/s (job ends per second), the
p50/p99/max dispatch lateness of the run-once jobs that started in the window
(handler start minus (add time + delay)), jobs in flight, the history size
and the process RSS; it also reads back the records of up to 200 jobs that
ended in the window and compares them with what the listeners saw.

At the end it stops adding, pauses the recurring tasks, lets every job end,
and checks that no record was lost: the history holds exactly as many jobs
of each status as the listeners saw end, every run-once job ended the
expected number of times (once; twice if retried; never if removed), and no
sampled record differed. The exit status is 1 if any check failed.

The soak's own bookkeeping is a few bytes per job (a counter per run-once
job, the lateness values), so RSS growth is quiv's (and its SQLite cache's).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import sys
import threading
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from quiv import AsyncQuiv, Event, Job, JobNotFoundError, JobStatus, Task

#: how long a job that waits for its cancel waits at most
GIVE_UP = 30.0
#: records read back per window
SAMPLE = 200


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux: current; elsewhere: peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def percentile(values: Any, q: float) -> float:
    if not len(values):
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[index])


@dataclass
class Stats:
    """What handlers (worker threads) and listeners (the loop) report."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: run-once token -> intended start (monotonic); popped when it starts
    due: dict[int, float] = field(default_factory=dict)
    #: lateness (s) of every run-once start, and of this window's
    lateness: array[float] = field(default_factory=lambda: array("d"))
    window_lateness: list[float] = field(default_factory=list)
    #: ends seen by the listeners, by status; all and in this window
    ends: Counter[str] = field(default_factory=Counter)
    window_ends: int = 0
    #: up to SAMPLE (job id, status) of this window's ends, to read back
    sample: list[tuple[str, JobStatus]] = field(default_factory=list)
    #: run-once token -> ends seen (a byte each)
    once_ended: bytearray = field(default_factory=bytearray)
    #: run-once token -> ends expected (0 once removed, 2 if retried after a failure)
    once_expected: bytearray = field(default_factory=bytearray)
    #: task ids of jobs to cancel while they run; of tasks to remove before they are due
    cancel_targets: set[str] = field(default_factory=set)
    remove_targets: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    progress: int = 0

    def started(self, token: int) -> None:
        now = time.monotonic()
        with self.lock:
            due = self.due.pop(token, None)
            if due is not None:
                self.lateness.append(now - due)
                self.window_lateness.append(now - due)

    def on_end(self, event: Event, task: Task, job: Job) -> None:
        # on the scheduler's loop, like everything that reads these fields
        self.ends[job.status.value] += 1
        self.window_ends += 1
        if len(self.sample) < SAMPLE:
            self.sample.append((job.id, job.status))
        elif random.random() < 0.05:
            self.sample[random.randrange(SAMPLE)] = (job.id, job.status)
        if task.run_once:
            token = task.args[0]
            self.once_ended[token] = min(255, self.once_ended[token] + 1)


STATS = Stats()


# -- handlers --------------------------------------------------------------------------


def quick(token: int) -> None:
    STATS.started(token)


async def quick_async(token: int) -> None:
    STATS.started(token)
    await anyio.lowlevel.checkpoint()


def fails(token: int) -> None:
    STATS.started(token)
    raise ValueError("soak failure")


def waits(token: int, _stop_event: threading.Event) -> None:
    STATS.started(token)
    _stop_event.wait(GIVE_UP)


async def waits_async(token: int) -> None:
    STATS.started(token)
    await anyio.sleep(GIVE_UP)


def reports(token: int, _progress_hook: Any) -> None:
    STATS.started(token)
    for step in range(20):
        _progress_hook(step=step)


def on_progress(step: int) -> None:
    STATS.progress += 1


def tick() -> None:
    pass


async def tick_async() -> None:
    await anyio.lowlevel.checkpoint()


#: kind -> (handler, add_task settings, weight, ends expected)
ONE_SHOTS: dict[str, tuple[Any, dict[str, Any], float, int]] = {
    "quick": (quick, {}, 0.50, 1),
    "quick_async": (quick_async, {}, 0.15, 1),
    "fails": (fails, {}, 0.05, 1),
    "fails_retried": (fails, {"max_retries": 1, "retry_backoff": 0.05}, 0.03, 2),
    "times_out": (waits, {"timeout": 0.02}, 0.04, 1),
    "times_out_async": (waits_async, {"timeout": 0.02}, 0.03, 1),
    "cancelled_running": (waits, {}, 0.05, 1),
    "removed_before_due": (quick, {}, 0.05, 0),
    "progress": (reports, {"progress_callback": on_progress}, 0.10, 1),
}


async def add_recurring(s: AsyncQuiv) -> list[str]:
    ids = [await s.add_task(f"tick{i}", tick, interval=0.05 + 0.05 * i) for i in range(8)]
    ids += [
        await s.add_task(f"tick_async{i}", tick_async, interval=0.2, fixed_interval=False)
        for i in range(4)
    ]
    ids.append(await s.add_task("jittery", tick, interval=0.5, jitter=0.2))
    ids.append(
        await s.add_task(
            "slow_progress", reports, interval=1.0, args=(-1,), progress_callback=on_progress
        )
    )
    return ids


async def feed(s: AsyncQuiv, rate: float, stop: anyio.Event, rng: random.Random) -> int:
    """Add run-once jobs at *rate* per second until *stop*; return how many."""
    kinds = list(ONE_SHOTS)
    weights = [ONE_SHOTS[k][2] for k in kinds]
    token = 0
    begin = time.monotonic()
    while not stop.is_set():
        target = int((time.monotonic() - begin) * rate)
        while token < target:
            kind = rng.choices(kinds, weights)[0]
            func, settings, _, expected = ONE_SHOTS[kind]
            delay = rng.uniform(0.0, 0.5)
            if kind == "removed_before_due":
                delay += 5.0  # removed long before it is due
            STATS.once_ended.append(0)
            STATS.once_expected.append(expected)
            with STATS.lock:
                STATS.due[token] = time.monotonic() + delay
            task_id = await s.add_task(
                kind, func, run_once=True, delay=delay, args=(token,), **settings
            )
            if kind == "cancelled_running":
                STATS.cancel_targets.add(task_id)
            elif kind == "removed_before_due":
                STATS.remove_targets[task_id] = token
            token += 1
        await anyio.sleep(0.01)
    return token


async def cancel_targets(s: AsyncQuiv) -> None:
    """Cancel the jobs meant to be cancelled, remove the tasks meant to be removed."""
    while True:
        await anyio.sleep(0.05)
        for job in await s.get_all_jobs(status=JobStatus.RUNNING):
            if job.task_id in STATS.cancel_targets:
                STATS.cancel_targets.discard(job.task_id)
                s.cancel_job(job.id)
        for task_id, token in list(STATS.remove_targets.items()):
            del STATS.remove_targets[task_id]
            await s.remove_task(task_id)
            with STATS.lock:
                STATS.due.pop(token, None)
            STATS.removed += 1


# -- the run ---------------------------------------------------------------------------


@dataclass
class Window:
    t: float
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    in_flight: int
    history: int
    rss_mb: float
    sampled: int
    sample_mismatches: int


async def check_sample(s: AsyncQuiv, sample: list[tuple[str, JobStatus]]) -> int:
    """Read back sampled records; return how many are missing or differ."""
    bad = 0
    for job_id, status in sample:
        try:
            job = await s.get_job(job_id)
        except JobNotFoundError:
            bad += 1
            continue
        bad += job.status is not status
    return bad


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    random.seed(args.seed)
    logger = logging.getLogger("quiv.soak")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())  # failing jobs are part of the load
    windows: list[Window] = []
    rss_start = rss_mb()
    async with AsyncQuiv(
        pool_size=args.pool_size,
        history_retention_seconds=args.retention,
        logger=logger,
        shutdown_timeout=10,
    ) as s:
        for event in (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED):
            s.add_listener(event, STATS.on_end)
        recurring = await add_recurring(s)
        stop = anyio.Event()
        added = 0
        begin = time.monotonic()

        async def run_feed() -> None:
            nonlocal added
            added = await feed(s, args.rate, stop, rng)

        print(
            f"{'t (s)':>6} {'jobs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
            f" {'flight':>6} {'history':>8} {'RSS MB':>7} {'checked':>8}",
            flush=True,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_feed)
            tg.start_soon(cancel_targets, s)
            next_report = begin + args.window
            while time.monotonic() - begin < args.duration:
                await anyio.sleep(max(0.0, next_report - time.monotonic()))
                next_report += args.window
                windows.append(await close_window(s, begin, args.window))
            stop.set()
            load_seconds = time.monotonic() - begin
            load_ends = sum(STATS.ends.values())
            # the end: no new recurring jobs, every run-once job ends
            for task_id in recurring:
                await s.pause_task(task_id)
            with anyio.move_on_after(GIVE_UP + 10) as drain:
                while True:
                    await anyio.sleep(0.1)
                    if not (await s.stats()).active_jobs and all(
                        e >= x for e, x in zip(STATS.once_ended, STATS.once_expected, strict=True)
                    ):
                        break
            tg.cancel_scope.cancel()
        history = Counter(job.status.value for job in await s.get_all_jobs())
        history_count = (await s.stats()).job_history_count
        with anyio.move_on_after(10):  # the last events are still on their way
            while sum(STATS.ends.values()) < sum(history.values()):
                await anyio.sleep(0.01)
        sampled = await check_sample(s, STATS.sample)
    return report(
        args,
        windows,
        history,
        history_count,
        added,
        (load_seconds, load_ends),
        rss_start,
        drain.cancelled_caught,
        sampled,
    )


async def close_window(s: AsyncQuiv, begin: float, seconds: float) -> Window:
    with STATS.lock:
        lateness, STATS.window_lateness = STATS.window_lateness, []
    ends, STATS.window_ends = STATS.window_ends, 0
    sample, STATS.sample = STATS.sample, []
    mismatches = await check_sample(s, sample)
    stats = await s.stats()
    window = Window(
        t=round(time.monotonic() - begin, 1),
        jobs_per_s=ends / seconds,
        p50_ms=percentile(lateness, 50) * 1000,
        p99_ms=percentile(lateness, 99) * 1000,
        max_ms=max(lateness, default=math.nan) * 1000,
        in_flight=stats.active_jobs,
        history=stats.job_history_count,
        rss_mb=rss_mb(),
        sampled=len(sample),
        sample_mismatches=mismatches,
    )
    print(
        f"{window.t:>6.0f} {window.jobs_per_s:>8.0f} {window.p50_ms:>7.1f}"
        f" {window.p99_ms:>7.1f} {window.max_ms:>7.1f} {window.in_flight:>6}"
        f" {window.history:>8} {window.rss_mb:>7.1f} {window.sampled:>8}",
        flush=True,
    )
    return window


def report(
    args: argparse.Namespace,
    windows: list[Window],
    history: Counter[str],
    history_count: int,
    added: int,
    load: tuple[float, int],
    rss_start: float,
    drain_timed_out: bool,
    final_sample_mismatches: int,
) -> dict[str, Any]:
    load_seconds, load_ends = load
    ends = dict(STATS.ends)
    wrong_counts = [
        (token, seen, expected)
        for token, (seen, expected) in enumerate(
            zip(STATS.once_ended, STATS.once_expected, strict=True)
        )
        if seen != expected
    ]
    problems = {
        "history_differs_from_events": int(dict(history) != ends),
        "history_count_differs": int(history_count != sum(history.values())),
        "run_once_wrong_end_count": len(wrong_counts),
        "sampled_records_missing_or_different": final_sample_mismatches
        + sum(w.sample_mismatches for w in windows),
        "drain_timed_out": int(drain_timed_out),
    }
    steady = windows[1:] or windows
    lateness = STATS.lateness
    summary = {
        "backend": args.backend,
        "load_seconds": round(load_seconds, 1),
        "rate_per_s": args.rate,
        "pool_size": args.pool_size,
        "run_once_added": added,
        "removed_before_due": STATS.removed,
        "jobs_ended": sum(ends.values()),
        "jobs_per_s": round(load_ends / load_seconds, 1),
        "statuses": ends,
        "history_statuses": dict(history),
        "progress_deliveries": STATS.progress,
        "lateness_ms": {
            "p50": round(percentile(lateness, 50) * 1000, 2),
            "p99": round(percentile(lateness, 99) * 1000, 2),
            "max": round(max(lateness, default=math.nan) * 1000, 2),
            "worst_window_p99": round(max((w.p99_ms for w in steady), default=math.nan), 2),
        },
        "rss_mb": {
            "start": round(rss_start, 1),
            "first_window": round(windows[0].rss_mb, 1) if windows else None,
            "last_window": round(windows[-1].rss_mb, 1) if windows else None,
            "max": round(max((w.rss_mb for w in windows), default=math.nan), 1),
        },
        "records_sampled": sum(w.sampled for w in windows) + len(STATS.sample),
        "lost_records": problems,
        "ok": not any(problems.values()),
    }
    print(json.dumps(summary, indent=2))
    if wrong_counts:
        print("run-once tokens with a wrong number of ends (token, seen, expected):")
        print(wrong_counts[:20])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"summary": summary, "windows": [asdict(w) for w in windows]}, out, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument(
        "--rate", type=float, default=400.0, help="run-once jobs added per second (400)"
    )
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0, help="seconds per report line (10)")
    parser.add_argument(
        "--retention",
        type=float,
        default=math.inf,
        help="history_retention_seconds (default: keep every record, so all can be counted)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the summary and the windows to this file")
    args = parser.parse_args(argv)
    print(
        f"soak: {args.duration:g} s on {args.backend}, {args.rate:g} run-once jobs/s,"
        f" pool {args.pool_size}, pid {os.getpid()}",
        flush=True,
    )
    summary = anyio.run(soak, args, backend=args.backend)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
