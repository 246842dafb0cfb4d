"""Host mode under real pre-fork servers: three workers, one SQLite file, one tick a second.

Each case starts a real server as a subprocess on a free port of 127.0.0.1,
serving tests/host_app.py with three worker processes; every worker starts
its own scheduler in its lifespan and declares the same keyed schedule,
``tick`` every second. The tick appends ``"<pid> <unix time>"`` to a file,
and the tests read that file (and the ``jobs`` table) to check that:

- host-wide the tick runs once per second: no second has two runs, none is
  skipped;
- after every worker restarts, a daily (cron) schedule neither runs again
  nor is skipped (the workers' wall clock is shifted to just before 03:00);
- after ``SIGKILL`` of the runner (the pid that wrote the latest tick),
  another worker takes over within about a second, and still no fire runs
  twice.

Servers: ``uvicorn --workers 3``, and gunicorn with uvicorn's worker class,
with and without ``--preload``. ``QUIV_TEST_PLAIN=1`` serves the same app
without host mode: every worker then runs its own tick, and a negative
control checks that the assertions here catch it.

Every wait is for a condition, with a deadline: it is checked again each time
a worker writes a line (a byte through a FIFO, see :class:`Wake`), never on
a timer.
The server's process group is killed whatever happens.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="pre-fork servers are POSIX-only"),
    pytest.mark.timeout(80),
]

TESTS = Path(__file__).resolve().parent


WORKERS = 3
#: bound for the server to start all its workers
START_TIMEOUT = 20.0
#: bound for each further tick (the interval is 1 s; a takeover may add about 1 s)
TICK_TIMEOUT = 5.0
#: a standby must run the next tick this soon after the last tick of the killed runner
MAX_GAP = 2.0
#: two ticks closer than this are two runs of one fire, or two schedules side by side
MIN_GAP = 0.5

T = TypeVar("T")


class Wake:
    """A FIFO the server's workers write a byte to whenever they append a line
    (a tick, a daily run, a worker's start): the test waits on it, not on time.

    The test holds both ends open, so the FIFO never reports end of file and a
    worker's non-blocking write always finds a reader.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"wake-{os.getpid()}-{id(self)}"
        os.mkfifo(self.path)
        self._reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._writer = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)

    def wait(self, seconds: float) -> None:
        """Return once a worker wrote (or after *seconds*); take what they wrote."""
        readable, _, _ = select.select([self._reader], [], [], max(0.0, seconds))
        if readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._reader, 65536)

    def close(self) -> None:
        os.close(self._reader)
        os.close(self._writer)
        self.path.unlink()


def wait_until(predicate: Callable[[], T], timeout: float, what: str, wake: Wake) -> T:
    """Check *predicate* each time a worker writes (every tick, at least once a
    second); return its first truthy result.

    Fails the test, naming *what* it waited for, after *timeout* seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        wake.wait(left)


@dataclass(frozen=True)
class Tick:
    pid: int
    at: float  # unix time


@dataclass
class Site:
    """A running server and the files its workers write."""

    process: subprocess.Popen[bytes]
    ticks_file: Path
    workers_file: Path
    db: Path
    log: Path
    port: int
    wake: Wake

    def ticks(self) -> list[Tick]:
        if not self.ticks_file.exists():
            return []
        ticks = []
        for line in self.ticks_file.read_text().splitlines():
            pid, at = line.split()
            ticks.append(Tick(int(pid), float(at)))
        return sorted(ticks, key=lambda tick: tick.at)

    def ticks_since(self, since: float) -> list[Tick]:
        return [tick for tick in self.ticks() if tick.at > since]

    def workers(self) -> set[int]:
        if not self.workers_file.exists():
            return set()
        return {int(line) for line in self.workers_file.read_text().split()}

    def wait_for_ticks(self, count: int, since: float) -> list[Tick]:
        """Wait until *count* ticks happened after *since*; return them (and any more)."""

        def enough() -> list[Tick] | None:
            self.check_alive()
            ticks = self.ticks_since(since)
            return ticks if len(ticks) >= count else None

        return wait_until(
            enough, TICK_TIMEOUT * count, f"{count} ticks after {since:.3f}", self.wake
        )

    def stop(self) -> None:
        """Stop the server as a deploy does: ``SIGTERM``, then wait for every worker to end."""
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=START_TIMEOUT)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def duplicate_fires(self) -> list[tuple[int, int]]:
        """``(scheduled_at, runs)`` of every fire of ``tick`` with more than one job row."""
        uri = f"file:{self.db}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
            rows = conn.execute(
                "SELECT scheduled_at, COUNT(*) FROM jobs WHERE task_name = 'tick' "
                "AND scheduled_at IS NOT NULL GROUP BY scheduled_at HAVING COUNT(*) > 1"
            ).fetchall()
        return [(int(at), int(runs)) for at, runs in rows]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(kind: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "host_app:app", "--app-dir", str(TESTS)),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)),
            *("--log-level", "warning"),
        ]
    gunicorn = [
        *(sys.executable, "-m", "gunicorn", "host_app:app", "--chdir", str(TESTS)),
        *("-w", str(WORKERS), "-k", "uvicorn.workers.UvicornWorker"),
        *("-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5"),
    ]
    if kind == "gunicorn-preload":
        gunicorn.append("--preload")
    return gunicorn


def _launch(
    kind: str, folder: Path, *, plain: bool = False, env: Mapping[str, str] | None = None
) -> Site:
    """Start *kind* with three workers in a process group of its own."""
    if kind.startswith("gunicorn"):
        pytest.importorskip("gunicorn")
    ticks_file, workers_file = folder / "ticks.txt", folder / "workers.txt"
    db, log = folder / "quiv.db", folder / "server.log"
    wake = Wake(folder)
    env = {
        **os.environ,
        **(env or {}),
        "QUIV_TEST_DB": str(db),
        "QUIV_TEST_TICKS": str(ticks_file),
        "QUIV_TEST_WORKERS": str(workers_file),
        "QUIV_TEST_PLAIN": "1" if plain else "0",
        "QUIV_TEST_WAKE": str(wake.path),
    }
    port = _free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            _command(kind, port),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server and its workers: one process group
        )
    return Site(process, ticks_file, workers_file, db, log, port, wake)


@contextlib.contextmanager
def serve(
    kind: str, folder: Path, *, plain: bool = False, env: Mapping[str, str] | None = None
) -> Iterator[Site]:
    """Start *kind* with three workers; yield once every worker's scheduler started."""
    site = _launch(kind, folder, plain=plain, env=env)
    try:

        def started() -> bool:
            site.check_alive()
            return len(site.workers()) >= WORKERS

        wait_until(
            started, START_TIMEOUT, f"{WORKERS} workers to start their schedulers", site.wake
        )
        yield site
    except BaseException:
        print(f"--- {kind} log ---\n{site.log_tail()}", file=sys.stderr)  # noqa: T201
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(site.process.pid, signal.SIGKILL)
        site.process.wait(timeout=10)
        site.wake.close()


def runs_per_second(ticks: list[Tick]) -> dict[int, int]:
    """How many ticks fell in each second of the window, counted from the first tick.

    A tick belongs to the second whose start it is nearest to, so the lateness
    of a run (milliseconds) never moves it into the next second.
    """
    first = ticks[0].at
    counts = collections.Counter(round(tick.at - first) for tick in ticks)
    return {second: counts.get(second, 0) for second in range(max(counts) + 1)}


def assert_once_per_second(ticks: list[Tick]) -> None:
    """Host-wide, one run per second: no second ran twice, none was skipped."""
    assert len(ticks) >= 2, ticks
    counts = runs_per_second(ticks)
    doubled = {second: runs for second, runs in counts.items() if runs > 1}
    assert not doubled, f"seconds that ran more than once: {doubled}; runs per second: {counts}"
    # seconds 0 and the last are whole by construction (the window is the ticks' own span)
    skipped = [second for second, runs in counts.items() if runs == 0]
    assert not skipped, f"seconds with no run: {skipped}; runs per second: {counts}"


def assert_gaps(ticks: list[Tick]) -> None:
    """Consecutive ticks are at least MIN_GAP and at most MAX_GAP apart."""
    gaps = [round(b.at - a.at, 3) for a, b in zip(ticks, ticks[1:], strict=False)]
    assert min(gaps) >= MIN_GAP, (
        f"two ticks {min(gaps)} s apart: one fire ran twice, or workers tick side by side; {gaps}"
    )
    assert max(gaps) <= MAX_GAP, f"no tick for {max(gaps)} s: the takeover was late; {gaps}"


CASES = [
    pytest.param("uvicorn", 20, 5, id="uvicorn-workers-3"),
    pytest.param("gunicorn", 10, 4, id="gunicorn-w-3"),
    pytest.param("gunicorn-preload", 10, 4, id="gunicorn-w-3-preload"),
]


@pytest.mark.parametrize(("kind", "steady", "after_kill"), CASES)
def test_one_worker_runs_the_tick_and_another_takes_over_when_it_is_killed(
    kind: str, steady: int, after_kill: int, tmp_path: Path
) -> None:
    with serve(kind, tmp_path) as site:
        ready = time.time()
        window = site.wait_for_ticks(steady, since=ready)[:steady]
        assert_once_per_second(window)
        assert len({tick.pid for tick in window}) == 1, f"the tick moved between workers: {window}"
        assert not site.duplicate_fires(), "a fire has two job rows"

        # kill the runner just after a tick: the runner is the pid of the latest line
        runner = site.wait_for_ticks(1, since=window[-1].at)[-1].pid
        assert runner in site.workers()
        os.kill(runner, signal.SIGKILL)
        killed_at = time.time()

        site.wait_for_ticks(after_kill, since=killed_at)
        ticks = site.ticks_since(ready)
        before = [tick for tick in ticks if tick.at <= killed_at]
        after = [tick for tick in ticks if tick.at > killed_at]
        assert before[-1].pid == runner, before
        assert runner not in {tick.pid for tick in after}, f"the killed runner ticked: {after}"
        takeover = after[0].at - before[-1].at
        assert takeover <= MAX_GAP, (
            f"the first tick after the kill of {runner} came {takeover:.3f} s after its last"
        )
        assert_gaps(ticks)
        assert_once_per_second(after)  # the new runner's seconds, whatever their phase
        assert not site.duplicate_fires(), "a fire has two job rows"


def test_without_host_mode_workers_sharing_a_database_refuse_to_start(tmp_path: Path) -> None:
    """The mistake host mode exists for is loud: a second worker on the file fails its start.

    Without host mode, every worker would run every tick (the checks above
    would see three runs a second); instead the first worker's scheduler
    holds the file, the next one's start raises, and the server stops.
    """
    site = _launch("uvicorn", tmp_path, plain=True)
    try:
        site.process.wait(timeout=START_TIMEOUT)  # it stops by itself (uvicorn exits with 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(site.process.pid, signal.SIGKILL)
        site.process.wait(timeout=10)
        site.wake.close()
    log = site.log.read_text(errors="replace")
    assert "Application startup failed" in log, log
    assert "processes that share a database need host_mode=True" in log, log


def test_a_cancel_sent_to_one_worker_stops_a_job_running_in_another(tmp_path: Path) -> None:
    import httpx

    with serve("uvicorn", tmp_path) as site:
        base = f"http://127.0.0.1:{site.port}"
        with httpx.Client(base_url=base, timeout=10) as owner:
            started = owner.post("/long").json()
        job_id, runs_in = started["job_id"], started["pid"]

        def other_worker() -> httpx.Client | None:
            # a new connection lands on whichever worker accepts it; keep one that is not the job's
            client = httpx.Client(base_url=base, timeout=10)
            if client.get("/pid").json()["pid"] != runs_in:
                return client
            client.close()
            return None

        client = wait_until(other_worker, 20, "a connection to another worker", site.wake)
        try:
            answer = client.post(f"/cancel/{job_id}").json()
            assert answer["pid"] != runs_in and answer["cancelled"] is True, answer

            def cancelled() -> bool:
                return bool(client.get(f"/job/{job_id}").json()["status"] == "cancelled")

            # bounded; the latency is measured in bench/host.py
            wait_until(cancelled, 10, "the job to be recorded cancelled", site.wake)
        finally:
            client.close()


DAY = datetime(2026, 3, 10, tzinfo=timezone.utc)


def _daily_runs(path: Path) -> list[datetime]:
    """The wall times (on the workers' shifted clock) at which ``daily`` ran."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return sorted(datetime.fromtimestamp(float(at), timezone.utc) for _, at in lines)


def _stored_next_run(db: Path) -> datetime | None:
    """``next_run_at`` of ``daily`` as the host's file holds it (the runner's record)."""
    uri = f"file:{db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        row = conn.execute("SELECT next_run_at FROM tasks WHERE task_name = 'daily'").fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.fromtimestamp(row[0] / 1_000_000, timezone.utc)


def test_a_restart_of_every_worker_neither_reruns_nor_skips_the_daily_schedule(
    tmp_path: Path,
) -> None:
    runs_file = tmp_path / "daily.txt"

    def deployed_at(wall: datetime) -> dict[str, str]:
        offset = wall.timestamp() - time.time()
        return {"QUIV_TEST_DAILY": str(runs_file), "QUIV_TEST_WALL_OFFSET": repr(offset)}

    def next_run_is(site: Site, expected: datetime) -> None:
        wait_until(
            lambda: _stored_next_run(site.db) == expected,
            TICK_TIMEOUT,
            f"the stored next run to be {expected} (it is {_stored_next_run(site.db)})",
            site.wake,
        )

    # deployed at 02:59:54: today's 03:00 runs, once; then a deploy stops every worker
    with serve(
        "uvicorn", tmp_path, env=deployed_at(DAY.replace(hour=2, minute=59, second=54))
    ) as site:
        wait_until(
            lambda: _daily_runs(runs_file), START_TIMEOUT + 10, "today's 03:00 run", site.wake
        )
        site.stop()
    (today,) = _daily_runs(runs_file)
    assert DAY.replace(hour=3) <= today < DAY.replace(hour=3, second=2), today

    # every worker back a few seconds later, still that morning: the run is not made
    # again, tomorrow's is next
    with serve("uvicorn", tmp_path, env=deployed_at(today + timedelta(seconds=5))) as site:
        site.wait_for_ticks(2, since=time.time())  # the new runner has been running a while
        next_run_is(site, DAY.replace(day=11, hour=3))
        assert _daily_runs(runs_file) == [today], "the restart ran today's fire again"
    # (that server ended by SIGKILL: a crash of every worker, no clean close)

    # down over tomorrow's 03:00, back at 03:00:20: one catch-up run, then the next day
    back = DAY.replace(day=11, hour=3, second=20)
    with serve("uvicorn", tmp_path, env=deployed_at(back)) as site:
        wait_until(
            lambda: len(_daily_runs(runs_file)) >= 2, TICK_TIMEOUT, "the catch-up run", site.wake
        )
        site.wait_for_ticks(2, since=time.time())
        next_run_is(site, DAY.replace(day=12, hour=3))
        _, catch_up = _daily_runs(runs_file)
        assert back <= catch_up < back + timedelta(seconds=TICK_TIMEOUT), catch_up
        assert len(_daily_runs(runs_file)) == 2, "the missed fire ran more than once"
