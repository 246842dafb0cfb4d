"""The dashboard's figures (issue 17), with a real server and Debian's Chromium.

``uv run python -m bench.dashboard`` (add ``--repeats N``, ``--pages N``,
``--jobs N``) serves ``bench/dashboard_app.py`` with uvicorn on 127.0.0.1 in a
subprocess and prints a Markdown section (also written to
``bench/DASHBOARD.md``):

- **progress to page**: a job reports ``done`` 1..50, 0.2 s apart (slower
  than the per-job pacing of 0.1 s, so no report is merged into another);
  the page, open in headless Chromium, records with a ``MutationObserver``
  the wall time at which each value appears in the running job's progress
  bar (the last report may arrive merged with the job's end: not counted). The
  latency of a report is that time minus the wall time the handler called
  ``_progress_hook`` (one machine, one clock).
- **W1 with pages open**: W1 (5,000 run-once no-op sync jobs added as fast
  as possible, every one completed) on the server's scheduler, with no page
  open, with one and with *pages* bare event streams (read and discarded by
  threads of this process), and with *pages* Chromium pages of the dashboard
  open, interleaved, medians of *repeats*. The Chromium pages run on the
  same 2 cores as the server, so that figure includes the browser's own
  load on the machine: the server's own CPU time during each run, and
  Chromium's, are reported beside the throughput.
- **a long history**: after the W1 runs the server's history holds every
  one of their jobs (tens of thousands); the time of one page of 50 jobs
  from the JSON route (newest, deep in the history, filtered), and of
  opening the page in Chromium until its jobs table shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

OBSERVER = """
() => {
  window.__seen = {};
  const body = document.querySelector('#jobs tbody');
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    for (const bar of body.querySelectorAll("tr[data-status='running'] progress")) {
      const value = bar.getAttribute('value');
      if (!(value in window.__seen)) window.__seen[value] = now / 1000;
    }
  }).observe(body, { childList: true, subtree: true, attributes: true });
}
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(method: str, url: str) -> Any:
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(request, timeout=180) as response:
        return json.loads(response.read())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* (Linux ``/proc``), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _browser_cpu() -> float:
    """CPU time of every Chromium process on the machine."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("chrom"):
                total += _cpu_seconds(int(entry))
    return total


SERVER_PID: list[int] = []


@contextlib.contextmanager
def server() -> Iterator[str]:
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.dashboard_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    SERVER_PID[:] = [process.pid]
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _http("GET", base + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def latency(base: str, browser: Any, reports: int = 50) -> list[float]:
    page = browser.new_page()
    try:
        page.goto(base + "/quiv/")
        page.wait_for_selector("#connection[data-state='live']")
        page.evaluate(OBSERVER)
        _http("POST", f"{base}/bench/progress?reports={reports}&gap=0.2")
        # the last report may reach the page merged with the job's end: wait for the one before
        page.wait_for_function(
            f"() => window.__seen && '{reports - 1}' in window.__seen", timeout=reports * 1000
        )
        seen = page.evaluate("() => window.__seen")
        sent = _http("GET", base + "/bench/progress")
        return [(seen[k] - sent[k]) * 1000 for k in sent if k in seen]
    finally:
        page.close()


def _drain(url: str, stop: threading.Event) -> None:
    import httpx

    with httpx.Client(timeout=None) as client, client.stream("GET", url) as response:
        for _ in response.iter_bytes():
            if stop.is_set():
                return


def big_history(base: str, browser: Any) -> dict[str, float]:
    """Milliseconds for the JSON of one page of jobs, and for the whole page in Chromium.

    Run last: by then the server's history holds every job of every W1 run.
    """
    figures: dict[str, float] = {
        "jobs": float(_http("GET", base + "/quiv/api/stats")["stats"]["job_history_count"])
    }
    for name, query in (
        ("first", "limit=50"),
        ("deep", "limit=50&offset=50000"),
        ("failed", "limit=50&status=failed"),
        ("window", "limit=50&window=3600"),
    ):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            _http("GET", f"{base}/quiv/api/jobs?{query}")
            times.append((time.perf_counter() - start) * 1000)
        figures[name] = statistics.median(times)
    loads = []
    for _ in range(3):
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(base + "/quiv/")
        page.wait_for_selector("#jobs tbody tr")
        loads.append((time.perf_counter() - start) * 1000)
        page.close()
    figures["page"] = statistics.median(loads)
    return figures


def w1(base: str, jobs: int) -> float:
    result = _http("POST", f"{base}/bench/w1?jobs={jobs}")
    return float(result["jobs_per_s"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "DASHBOARD.md"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        lat: list[float] = []
        runs: dict[str, list[float]] = {"none": [], "stream": [], "streams": [], "browser": []}
        with server() as base:
            for _ in range(args.repeats):
                lat.extend(latency(base, browser))
            order = list(runs)
            cpu: dict[str, list[float]] = {mode: [] for mode in runs}
            bcpu: dict[str, list[float]] = {mode: [] for mode in runs}
            for repeat in range(args.repeats):
                for mode in order if repeat % 2 == 0 else order[::-1]:
                    pages: list[Any] = []
                    stop = threading.Event()
                    threads: list[threading.Thread] = []
                    if mode == "browser":
                        for _ in range(args.pages):
                            page = browser.new_page()
                            page.goto(base + "/quiv/")
                            page.wait_for_selector("#connection[data-state='live']")
                            pages.append(page)
                    elif mode in ("stream", "streams"):
                        for _ in range(1 if mode == "stream" else args.pages):
                            thread = threading.Thread(
                                target=_drain, args=(base + "/quiv/events", stop), daemon=True
                            )
                            thread.start()
                            threads.append(thread)
                        time.sleep(0.5)  # let the streams open (a benchmark, not a test)
                    server_cpu, browser_cpu = _cpu_seconds(SERVER_PID[0]), _browser_cpu()
                    runs[mode].append(w1(base, args.jobs))
                    cpu[mode].append(_cpu_seconds(SERVER_PID[0]) - server_cpu)
                    bcpu[mode].append(_browser_cpu() - browser_cpu)
                    stop.set()
                    for page in pages:
                        page.close()
            history = big_history(base, browser)
        browser.close()
    lat.sort()
    p95 = lat[int(len(lat) * 0.95) - 1]
    lines = [
        "# Dashboard figures",
        "",
        (
            f"`uv run python -m bench.dashboard --repeats {args.repeats} --pages {args.pages} "
            f"--jobs {args.jobs}`, uvicorn (asyncio), AsyncQuiv(pool_size=10), "
            f"headless Debian Chromium, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}."
        ),
        "",
        "| figure | value |",
        "|---|---|",
        (
            f"| progress report → value in the page's bar, median ({len(lat)} reports) "
            f"| {statistics.median(lat):.1f} ms |"
        ),
        f"| … p95 | {p95:.1f} ms |",
        f"| … max | {max(lat):.1f} ms |",
    ]
    for mode, label in (
        ("none", "no page open"),
        ("stream", "1 bare event stream open"),
        ("streams", f"{args.pages} bare event streams open"),
        ("browser", f"{args.pages} Chromium pages open"),
    ):
        values = runs[mode]
        lines.append(
            f"| W1 ({args.jobs} jobs), {label}: jobs/s, median (min–max) "
            f"| {statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f}) |"
        )
        lines.append(
            f"| … server process CPU during the run, median "
            f"| {statistics.median(cpu[mode]) * 1000:.0f} ms |"
        )
        if mode == "browser":
            lines.append(
                f"| … Chromium's CPU during the run, median "
                f"| {statistics.median(bcpu[mode]) * 1000:.0f} ms |"
            )
    lines += [
        (
            f"| with {history['jobs']:.0f} jobs in the history: one page of 50 jobs (JSON), "
            f"newest | {history['first']:.1f} ms |"
        ),
        f"| … at offset 50,000 | {history['deep']:.1f} ms |",
        f"| … failed only | {history['failed']:.1f} ms |",
        f"| … started in the last hour | {history['window']:.1f} ms |",
        f"| … the whole page in Chromium, until the jobs table shows | {history['page']:.0f} ms |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
