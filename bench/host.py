"""Host mode's figures (issue 16), on real ``uvicorn --workers 3`` servers.

``uv run --group bench python -m bench.host`` prints a Markdown section and
writes it to ``bench/HOST.md``:

- **failover**: the runner is killed with ``SIGKILL`` *kills* times; the
  takeover time is from the kill to the moment another worker holds the
  runner lock (its pid appears in ``<db>-runner.lock``, read every 2 ms);
- **duplicate fires**: over the whole run, a 1 s keyed tick must never run
  twice in one slot (two ticks less than half an interval apart), and the
  store's ``fires`` table must have no key and fire twice (it cannot: it is
  its primary key; counted all the same);
- **idle CPU** of an idle three-worker host (a daily task only), over a
  window, summed over the workers, as a share of one core;
- **cross-process cancel**: a job runs in one process; another process of the
  host calls ``cancel_job``; latency from that call to the job's stop event
  being set in the first (wall clock, one host), *cancels* times;
- **W1 in host mode**: 5,000 run-once no-op sync jobs added as fast as
  possible, every job recorded, on a ``db_path`` file, without and with host
  mode (a standby process on the same file), medians of *repeats*,
  interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
WORKERS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str, every: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Host:
    """A ``uvicorn --workers 3`` server of ``bench/host_app.py`` in a folder of its own."""

    def __init__(self, folder: Path, tick: float, off: bool = False) -> None:
        self.db = folder / "host.db"
        self.lock = folder / "host.db-runner.lock"
        self.ticks = folder / "ticks.txt"
        self.workers = folder / "workers.txt"
        env = {
            **os.environ,
            "QUIV_BENCH_DB": str(self.db),
            "QUIV_BENCH_TICKS": str(self.ticks),
            "QUIV_BENCH_WORKERS": str(self.workers),
            "QUIV_BENCH_TICK": str(tick),
            "QUIV_BENCH_OFF": "1" if off else "0",
        }
        command = [
            *(sys.executable, "-m", "uvicorn", "host_app:app", "--app-dir", str(HERE)),
            *("--host", "127.0.0.1", "--port", str(_free_port())),
            *("--workers", str(WORKERS), "--log-level", "error"),
        ]
        self.process = subprocess.Popen(
            command, env=env, cwd=folder, start_new_session=True, stdin=subprocess.DEVNULL
        )
        _wait(lambda: len(self.started()) >= WORKERS, 30, "three workers", every=0.05)

    def started(self) -> list[int]:
        return [int(p) for p in self.workers.read_text().split()] if self.workers.exists() else []

    def alive_workers(self) -> list[psutil.Process]:
        return [c for c in psutil.Process(self.process.pid).children() if c.is_running()]

    def runner(self) -> int | None:
        try:
            words = self.lock.read_text().split()
        except OSError:
            return None
        return int(words[0]) if words else None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def host(tick: float, off: bool = False) -> Iterator[Host]:
    with tempfile.TemporaryDirectory() as folder:
        server = Host(Path(folder), tick, off)
        try:
            yield server
        finally:
            server.close()


def failover(kills: int) -> dict[str, object]:
    takeovers: list[float] = []
    with host(tick=1.0) as server:
        for _ in range(kills):
            _wait(lambda: len(server.alive_workers()) >= WORKERS, 30, "three workers", 0.05)
            _wait(lambda: server.runner() is not None, 10, "a runner")
            old = server.runner()
            assert old is not None
            # one more worker than the runner has started: a standby is waiting
            _wait(lambda: len(server.started()) >= WORKERS, 30, "the standbys", 0.05)
            os.kill(old, signal.SIGKILL)
            killed = time.monotonic()
            _wait(lambda old=old: server.runner() not in (None, old), 10, "a new runner")
            takeovers.append(time.monotonic() - killed)
            time.sleep(1.5)  # let the respawned worker start, and a tick or two run
        stamps = sorted(float(line.split()[1]) for line in server.ticks.read_text().splitlines())
        import sqlite3

        with contextlib.closing(sqlite3.connect(server.db)) as conn:
            (twice,) = conn.execute(
                "SELECT count(*) FROM (SELECT key, fire FROM fires GROUP BY key, fire"
                " HAVING count(*) > 1)"
            ).fetchone()
    close = sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b - a < 0.5)
    return {
        "kills": kills,
        "takeover_p50_ms": statistics.median(takeovers) * 1000,
        "takeover_max_ms": max(takeovers) * 1000,
        "ticks": len(stamps),
        "ticks_in_one_slot": close,
        "fires_claimed_twice": int(twice),
    }


def _idle_share(window: float, off: bool) -> float:
    """CPU of the three workers over *window* seconds, as a share of one core (%)."""
    with host(tick=0.0, off=off) as server:
        time.sleep(2.0)  # settle: the workers' start-up is not idle time
        workers = server.alive_workers()
        before = [w.cpu_times() for w in workers]
        start = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - start
        after = [w.cpu_times() for w in workers]
    used = sum(
        (a.user + a.system) - (b.user + b.system) for a, b in zip(after, before, strict=True)
    )
    return used / elapsed * 100


def idle_cpu(window: float, repeats: int) -> dict[str, object]:
    """Idle CPU with host-mode schedulers and without any (uvicorn's own), interleaved."""
    quiv, bare = [], []
    for _ in range(repeats):
        quiv.append(_idle_share(window, off=False))
        bare.append(_idle_share(window, off=True))
    return {
        "window_s": window,
        "quiv_pct": statistics.median(quiv),
        "bare_pct": statistics.median(bare),
    }


W1_SCRIPT = textwrap.dedent(
    """
    import sys, time, anyio
    from quiv import AsyncQuiv, Event

    def noop():
        pass

    async def main(db, host, n):
        async with AsyncQuiv(db_path=db, host_mode=host) as s:
            done = anyio.Event()
            count = 0
            def ended(event, task, job=None):
                nonlocal count
                count += 1
                if count == n:
                    done.set()
            s.add_listener(Event.JOB_COMPLETED, ended)
            t0 = time.perf_counter()
            for _ in range(n):
                await s.add_task("noop", noop, run_once=True)
            with anyio.fail_after(120):
                await done.wait()
            await s.get_all_jobs(limit=1)  # every record committed
            print(n / (time.perf_counter() - t0))

    anyio.run(main, sys.argv[1], sys.argv[2] == "host", int(sys.argv[3]))
    """
)
STANDBY_SCRIPT = textwrap.dedent(
    """
    import sys, anyio
    from quiv import AsyncQuiv

    async def main(db):
        async with AsyncQuiv(db_path=db, host_mode=True):
            print("ready", flush=True)
            await anyio.sleep(3600)

    anyio.run(main, sys.argv[1])
    """
)


OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, anyio
    from quiv import AsyncQuiv

    def long(_stop_event):
        _stop_event.wait(60)
        print("stopped", time.time(), flush=True)

    async def main(db, n):
        async with AsyncQuiv(db_path=db, host_mode=True) as s:
            for _ in range(n):
                task_id = await s.add_task("long", long, run_once=True)
                job_id = (await s.get_task(task_id)).next_job_id
                await s.get_job(job_id)  # committed: the host's history shows it
                print("job", job_id, flush=True)
                await s.wait_for_job(job_id, timeout=60)

    anyio.run(main, sys.argv[1], int(sys.argv[2]))
    """
)


def cancels(count: int) -> dict[str, object]:
    """Cancel latency across processes: the call in this process to the stop event in another."""
    import anyio
    from anyio.streams.text import TextReceiveStream

    from quiv import AsyncQuiv

    latencies: list[float] = []

    async def run(db: str) -> None:
        owner = await anyio.open_process([sys.executable, "-c", OWNER_SCRIPT, db, str(count)])
        assert owner.stdout is not None
        lines = TextReceiveStream(owner.stdout)
        buffer = ""

        async def line() -> str:
            nonlocal buffer
            while "\n" not in buffer:
                buffer += await lines.receive()
            first, buffer = buffer.split("\n", 1)
            return first

        async with AsyncQuiv(db_path=db, host_mode=True) as scheduler:
            for _ in range(count):
                words = (await line()).split()
                assert words[0] == "job", words
                # the job has started; a random moment, so the watch is met at any phase
                await anyio.sleep(random.uniform(0.05, 0.25))
                sent = time.time()
                assert scheduler.cancel_job(words[1]), "the job is not in flight elsewhere"
                stopped = (await line()).split()
                latencies.append(float(stopped[1]) - sent)
        await owner.wait()

    with tempfile.TemporaryDirectory() as folder:
        anyio.run(run, str(Path(folder) / "cancel.db"))
    return {
        "cancels": count,
        "p50_ms": statistics.median(latencies) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def w1(repeats: int, jobs: int) -> dict[str, object]:
    rates: dict[str, list[float]] = {"single": [], "host": []}
    for _ in range(repeats):
        for mode in ("single", "host"):
            with tempfile.TemporaryDirectory() as folder:
                db = str(Path(folder) / "w1.db")
                standby = None
                if mode == "host":  # the runner shares the file with a standby, as on a host
                    standby = subprocess.Popen(
                        [sys.executable, "-c", STANDBY_SCRIPT, db],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    assert standby.stdout is not None
                    standby.stdout.readline()
                try:
                    out = subprocess.run(
                        [sys.executable, "-c", W1_SCRIPT, db, mode, str(jobs)],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=300,
                    ).stdout
                finally:
                    if standby is not None:
                        standby.kill()
                        standby.wait()
            rates[mode].append(float(out.strip().splitlines()[-1]))
    single, host_rate = statistics.median(rates["single"]), statistics.median(rates["host"])
    return {
        "jobs": jobs,
        "repeats": repeats,
        "single_jobs_per_s": single,
        "host_jobs_per_s": host_rate,
        "ratio": host_rate / single,
        "single_all": rates["single"],
        "host_all": rates["host"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cancels", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--out", default=str(HERE / "HOST.md"))
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    fo = failover(args.kills)
    idle = idle_cpu(args.idle, 3)
    cancel = cancels(args.cancels)
    w = w1(args.repeats, args.jobs)
    cpu = psutil.cpu_count()
    command = (
        f"uv run --group bench python -m bench.host --kills {args.kills}"
        f" --idle {args.idle:g} --cancels {args.cancels} --repeats {args.repeats}"
        f" --jobs {args.jobs}"
    )
    quiv_pct, bare_pct = float(idle["quiv_pct"]), float(idle["bare_pct"])  # type: ignore[arg-type]
    window = f"{idle['window_s']:g} s window, median of 3"
    rows = [
        ("takeover after `SIGKILL` of the runner, p50", f"{fo['takeover_p50_ms']:.0f} ms", ""),
        (f"takeover, max over {fo['kills']} kills", f"{fo['takeover_max_ms']:.0f} ms", "< 1000 ms"),
        ("1 s ticks in the run", f"{fo['ticks']}", ""),
        ("ticks that ran twice in one slot", f"{fo['ticks_in_one_slot']}", "0"),
        ("fires claimed twice in the store", f"{fo['fires_claimed_twice']}", "0"),
        (f"idle CPU of 3 idle host-mode workers ({window})", f"{quiv_pct:.2f} % of one core", ""),
        ("… the same server with no scheduler (uvicorn's own)", f"{bare_pct:.2f} %", ""),
        ("… quiv's share: the difference, all 3 workers", f"{quiv_pct - bare_pct:.2f} %", "≤ 1 %"),
        (
            f"cancel_job in one process to the stop event in another, p50 ({cancel['cancels']})",
            f"{cancel['p50_ms']:.0f} ms",
            "",
        ),
        ("… max", f"{cancel['max_ms']:.0f} ms", "≤ 200 ms"),
        ("W1 without host mode (`db_path=`), median", f"{w['single_jobs_per_s']:,.0f} jobs/s", ""),
        (
            "W1 in host mode, with a standby on the file, median",
            f"{w['host_jobs_per_s']:,.0f} jobs/s",
            "",
        ),
        ("W1 host mode / without", f"{w['ratio']:.2f}×", "≥ 0.5×"),
    ]
    runs = (
        f"W1 runs (jobs/s): without {[round(r) for r in w['single_all']]},"  # type: ignore[attr-defined]
        f" host mode {[round(r) for r in w['host_all']]}."  # type: ignore[attr-defined]
    )
    lines = [
        "# Host mode: failover, duplicates, idle CPU, W1 (issue 16)",
        "",
        "Generated by `bench/host.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {started}; machine: {cpu} cores; `uvicorn --workers {WORKERS}`",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows),
        "",
        runs,
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
