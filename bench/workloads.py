"""What each workload is: its sizes, its time bound and the metrics it reports.

This module is read by the orchestrator (to build runner parameters and the
report) and never imports a scheduler, so it is safe in every venv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Metric:
    """One number a workload reports."""

    key: str
    label: str
    #: ``"higher"``/``"lower"`` is better; ``None`` for counts and flags (no ratio)
    better: Better | None = None
    #: ``"bool"`` renders 1/0 as yes/no
    kind: Literal["number", "bool"] = "number"


@dataclass(frozen=True)
class Workload:
    """One benchmark workload, run once per system and repeat."""

    key: str
    title: str
    full: dict[str, Any]
    quick: dict[str, Any]
    #: hard limit for one runner process; the runner gets ``limit_s`` a bit below it
    timeout_s: float
    metrics: tuple[Metric, ...]

    def params(self, quick: bool) -> dict[str, Any]:
        """Parameters for one run, including the runner's internal time bound."""
        params = dict(self.quick if quick else self.full)
        params["limit_s"] = max(5.0, self.timeout_s - 20.0)
        return params


_THROUGHPUT = (
    Metric("jobs_per_s", "jobs/s (add first → last completion)", "higher"),
    Metric("add_s", "s to add all", "lower"),
    Metric("total_s", "s to last completion", "lower"),
    Metric("completed", "completed"),
    Metric("recorded", "completed jobs in history"),
)

WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload(
            key="w1",
            title="W1: run-once no-op sync jobs, added as fast as possible",
            full={"jobs": 5000},
            quick={"jobs": 500},
            timeout_s=240.0,
            metrics=_THROUGHPUT,
        ),
        Workload(
            key="w2",
            title="W2: run-once no-op `async def` jobs, added as fast as possible",
            full={"jobs": 5000},
            quick={"jobs": 500},
            timeout_s=240.0,
            metrics=_THROUGHPUT,
        ),
        Workload(
            key="w3",
            title="W3: one-shot jobs with delays uniform in [0.2, 1.2] s: start lateness",
            full={"jobs": 300, "min_delay": 0.2, "max_delay": 1.2, "seed": 7},
            quick={"jobs": 60, "min_delay": 0.2, "max_delay": 1.2, "seed": 7},
            timeout_s=90.0,
            metrics=(
                Metric("late_p50_ms", "lateness p50 (ms)", "lower"),
                Metric("late_p99_ms", "lateness p99 (ms)", "lower"),
                Metric("late_max_ms", "lateness max (ms)", "lower"),
                Metric("started", "started"),
            ),
        ),
        Workload(
            key="w4",
            title="W4: recurring tasks every 0.1 s: runs per task and drift",
            full={"tasks": 20, "interval": 0.1, "duration": 3.0},
            quick={"tasks": 5, "interval": 0.1, "duration": 1.0},
            timeout_s=60.0,
            metrics=(
                Metric("runs_min", "runs per task, min"),
                Metric("runs_median", "runs per task, median"),
                Metric("runs_max", "runs per task, max"),
                Metric("ideal_runs", "ideal runs per task"),
                Metric("drift_ms", "drift per task, median (ms)", "lower"),
                Metric("drift_max_ms", "drift per task, max (ms)", "lower"),
            ),
        ),
        Workload(
            key="w5",
            title="W5: tasks an hour away: add rate, memory, idle CPU",
            full={"tasks": 10000, "delay": 3600.0, "settle": 0.5, "idle": 5.0},
            quick={"tasks": 1000, "delay": 3600.0, "settle": 0.5, "idle": 1.0},
            timeout_s=240.0,
            metrics=(
                Metric("add_per_s", "tasks added/s", "higher"),
                Metric("rss_mb_per_10k", "RSS growth per 10k tasks (MB)", "lower"),
                Metric("idle_cpu_ms", "CPU while idle (ms, whole window)", "lower"),
            ),
        ),
        Workload(
            key="w6",
            title="W6: cancel latency of a running job",
            # check_every 0: the sync handler blocks in _stop_event.wait(), as the
            # floor-threads waiter does (issue 19 compares the two); > 0 polls instead
            full={"cancels": 50, "check_every": 0.0, "never_after": 2.0},
            quick={"cancels": 10, "check_every": 0.0, "never_after": 2.0},
            timeout_s=180.0,
            metrics=(
                Metric("sync_stop_p50_ms", "sync: cancel → handler sees stop, p50 (ms)", "lower"),
                Metric("sync_stop_p99_ms", "sync: cancel → handler sees stop, p99 (ms)", "lower"),
                Metric("sync_event_p50_ms", "sync: cancel → JOB_CANCELLED, p50 (ms)", "lower"),
                Metric("sync_event_p99_ms", "sync: cancel → JOB_CANCELLED, p99 (ms)", "lower"),
                Metric("async_stop_p50_ms", "async sleep: cancel → stopped, p50 (ms)", "lower"),
                Metric("async_stop_p99_ms", "async sleep: cancel → stopped, p99 (ms)", "lower"),
                Metric("async_stop_max_ms", "async sleep: cancel → stopped, max (ms)", "lower"),
            ),
        ),
        Workload(
            key="w7",
            title="W7: one job calling its progress hook many times",
            full={"calls": 20000},
            quick={"calls": 2000},
            timeout_s=120.0,
            metrics=(
                Metric("delivered_per_s", "delivered to main loop /s", "higher"),
                Metric("producer_per_s", "hook calls/s in the job", "higher"),
                Metric("dropped", "dropped"),
                Metric("order_kept", "order kept", kind="bool"),
            ),
        ),
        Workload(
            key="w8",
            title="W8: `call_on_main` round trips from inside a job",
            full={"calls": 2000},
            quick={"calls": 200},
            timeout_s=120.0,
            metrics=(
                Metric("us_per_call", "µs per call_on_main (sync job)", "lower"),
                # the floor is a reference for x_floor, not a property of the system
                Metric("floor_us", "µs per bare anyio.from_thread.run_sync"),
                Metric("x_floor", "call_on_main / floor (same process)", "lower"),
                Metric("async_us_per_call", "µs per call_on_main_async (async job)", "lower"),
            ),
        ),
        Workload(
            key="w9",
            title="W9: the host's requests: uvicorn answering while 2,000 sync + 500 async jobs/s run",
            full={"requests": 20000, "concurrency": 10, "warmup": 500, "ramp": 1.0},
            quick={"requests": 3000, "concurrency": 10, "warmup": 200, "ramp": 0.5},
            timeout_s=180.0,
            metrics=(
                Metric("req_p50_ms", "request latency p50 (ms)", "lower"),
                Metric("req_p99_ms", "request latency p99 (ms)", "lower"),
                Metric("req_per_s", "requests/s", "higher"),
                Metric("jobs_added_per_s", "jobs added/s meanwhile (goal 2,500)"),
                Metric("jobs_run_per_s", "jobs run/s meanwhile"),
                Metric("errors", "failed requests"),
            ),
        ),
        Workload(
            key="w10",
            title="W10: shutdown with a stuck or a long queue of jobs; the store's write rate",
            full={"stuck_timeout": 0.3, "queued": 5000, "store_jobs": 5000},
            quick={"stuck_timeout": 0.3, "queued": 500, "store_jobs": 1000},
            timeout_s=120.0,
            metrics=(
                Metric("stuck_shutdown_ms", "shutdown(0.3 s), a handler ignoring it (ms)"),
                Metric("stuck_overshoot_ms", "… past its timeout (ms)", "lower"),
                Metric("queued_shutdown_ms", "shutdown, 1 running + queued jobs (ms)", "lower"),
                Metric("queued_cancelled", "jobs recorded cancelled"),
                Metric("store_rows_per_s", "store: job rows written/s (burst)", "higher"),
                Metric("store_burst_ms", "store: burst queued → committed (ms)", "lower"),
            ),
        ),
        Workload(
            key="w11",
            title="W11: cron tasks: add rate, memory, idle CPU; fire lateness against interval tasks",
            full={
                "tasks": 10000,
                "settle": 0.5,
                "idle": 5.0,
                "firing": 200,
                "fire_for": 5,
            },
            quick={"tasks": 1000, "settle": 0.5, "idle": 1.0, "firing": 50, "fire_for": 2},
            timeout_s=150.0,
            metrics=(
                Metric("add_per_s", "cron tasks added/s", "higher"),
                Metric("expressions", "distinct expressions"),
                Metric("rss_mb_per_10k", "RSS growth per 10k cron tasks (MB)", "lower"),
                Metric("idle_cpu_ms", "CPU while idle (ms, whole window)", "lower"),
                Metric("late_p50_ms", "cron every second: lateness p50 (ms)", "lower"),
                Metric("late_p99_ms", "cron every second: lateness p99 (ms)", "lower"),
                Metric("late_max_ms", "cron every second: lateness max (ms)", "lower"),
                Metric("cron_fires", "cron fires in the window"),
                Metric("cron_early", "… of which early (before their second)"),
                Metric("interval_late_p50_ms", "interval 1 s: lateness p50 (ms)", "lower"),
                Metric("interval_late_p99_ms", "interval 1 s: lateness p99 (ms)", "lower"),
                Metric("interval_late_max_ms", "interval 1 s: lateness max (ms)", "lower"),
                Metric("interval_fires", "interval fires in the window"),
                Metric("interval_early", "… of which early (before their second)"),
                Metric("ideal_fires", "ideal fires per phase"),
            ),
        ),
        Workload(
            key="w12",
            title="W12: scale: W1 in one burst of 5k, 50k and 500k jobs (sync face: from a thread)",
            full={"sizes": [5000, 50000, 500000]},
            quick={"sizes": [500, 5000, 20000]},
            timeout_s=420.0,
            metrics=tuple(
                metric
                for size, word in (("small", "5k"), ("medium", "50k"), ("large", "500k"))
                for metric in (
                    Metric(f"{size}_jobs_per_s", f"{word}: jobs/s", "higher"),
                    Metric(
                        f"{size}_rss_mb_per_100k",
                        f"{word}: RSS growth per 100k jobs in history (MB)",
                        "lower",
                    ),
                    Metric(
                        f"{size}_peak_mb_per_100k",
                        f"{word}: peak RSS growth per 100k jobs (MB)",
                        "lower",
                    ),
                    Metric(f"{size}_rows_per_job", f"{word}: job rows written per job", "lower"),
                    Metric(f"{size}_recorded_share", f"{word}: share of jobs in history"),
                )
            )
            + (Metric("large_vs_small", "jobs/s at 500k ÷ jobs/s at 5k", "higher"),),
        ),
    )
}

IMPORT_METRICS = (
    Metric("import_ms", "import, -X importtime cumulative (ms)", "lower"),
    Metric("wall_ms", "interpreter + import − bare interpreter (ms)", "lower"),
)
