"""quiv.dashboard in a real browser: Playwright driving Debian's Chromium.

Each case serves tests/dashboard_app.py in a subprocess on a free port of
127.0.0.1, under uvicorn (asyncio) and under hypercorn's trio worker, with
an AsyncQuiv and with a Quiv. The page must show a job's progress bar
advancing live (server-sent events), cancel it with its button and show it
cancelled; a POST without the CSRF token, any action of the read-only
dashboard and every request to the dashboard without ``auth`` are refused.

Every wait is bounded: Playwright's ``expect`` retries until its timeout,
and the server's readiness is polled with a deadline. Chromium comes from
Debian (``apt-get install chromium``; ``.ci/run`` installs it); without it
these tests skip locally, and fail under CI. The docs' screenshot
(docs/images/dashboard.png) is taken here: ``QUIV_UPDATE_SCREENSHOT=1 uv run
pytest tests/test_dashboard_browser.py`` writes it anew.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
playwright_sync = pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, Page, expect  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CHROMIUM = Path("/usr/bin/chromium")
#: the docs' screenshot; a run writes it there only with QUIV_UPDATE_SCREENSHOT=1
#: (else to the test's tmp_path), so the suite leaves the checkout as it was
SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 20.0
#: Playwright's bound for each expectation (ms)
EXPECT_MS = 10_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVERS = {
    "uvicorn": ["-m", "uvicorn", "dashboard_app:app", "--host", "127.0.0.1", "--port", "{port}"],
    "hypercorn-trio": [
        "-m", "hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:{port}",
        "dashboard_app:app",
    ],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def post(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the test app's control routes (not the dashboard's)."""
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(base + path, data=data, method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


class ServerOutput:
    """A thread that reads a server's output as it comes; ``ready`` is set once
    the server says it listens (or its output ends: it exited)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._process = process
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if READY.search(line):
                self.ready.set()
        self.ready.set()  # the output ended: the server exited

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        """Once the server exited: let the reader reach the end, close the pipe."""
        self._reader.join(10)
        assert self._process.stdout is not None
        self._process.stdout.close()


#: what uvicorn and hypercorn print once the app started and the socket listens
READY = re.compile(r"(Uvicorn running|Running) on http://127\.0\.0\.1:\d+")


@contextlib.contextmanager
def serve(server: str, face: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    args = [arg.format(port=port) for arg in SERVERS[server]]
    env = {**os.environ, "QUIV_TEST_FACE": face, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, *args], cwd=TESTS, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = ServerOutput(process)
    base = f"http://127.0.0.1:{port}"
    try:
        if not output.ready.wait(START_TIMEOUT):
            pytest.fail(f"the server did not start in {START_TIMEOUT} s:\n{output.text()}")
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{output.text()}")
        assert _get(base + "/healthz") == 200, output.text()
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        output.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(EXPECT_MS)
    expect.set_options(timeout=EXPECT_MS)
    alerts: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "confirm":
            dialog.accept()
        else:
            alerts.append(dialog.message)
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")  # refusals
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert alerts == [], "the page ran a script it was given as data"
    assert errors == [], "the page's script failed"


CASES = [
    pytest.param("uvicorn", "async", id="uvicorn-AsyncQuiv"),
    pytest.param("uvicorn", "sync", id="uvicorn-Quiv"),
    pytest.param("hypercorn-trio", "async", id="hypercorn-trio-AsyncQuiv"),
    pytest.param("hypercorn-trio", "sync", id="hypercorn-trio-Quiv"),
]


@pytest.mark.parametrize(("server", "face"), CASES)
def test_progress_advances_live_and_the_cancel_button_cancels(
    page: Page, server: str, face: str, tmp_path: Path
) -> None:
    with serve(server, face, tmp_path) as base:
        hostile = "<img src=x onerror=alert(1)>"
        post(base, "/control/add", {"name": hostile})
        page.goto(base + "/quiv/")
        expect(page.locator("#connection")).to_have_text("Live")
        expect(page.locator("#tasks tbody th", has_text=hostile)).to_be_visible()
        assert page.locator("#tasks img").count() == 0

        post(base, "/control/samples")
        failed = page.locator("#jobs tbody tr[data-status='failed']", has_text="import-orders")
        expect(failed).to_contain_text("ValueError: orders.csv line 7")
        expect(page.locator("#jobs tbody tr[data-status='completed']")).to_contain_text(
            '"sent": 42'
        )
        post(base, "/control/start")
        row = page.locator("#jobs tbody tr[data-status='running']", has_text="crunch")
        bar = row.locator("progress")
        expect(bar).to_have_attribute("value", "0")
        expect(row.locator(".status")).to_contain_text("running")
        for done in (1, 2, 3):
            post(base, "/control/step")
            expect(bar).to_have_attribute("value", str(done))
        expect(row.locator(".progress")).to_contain_text("3 / 5 (60%)")
        in_flight = page.locator("#stats div", has_text="Jobs in flight").locator("dd")
        expect(in_flight).to_have_text("1")  # the statistics follow live too
        if server == "uvicorn" and face == "async":
            shot = SCREENSHOT if os.environ.get("QUIV_UPDATE_SCREENSHOT") == "1" else None
            shot = shot or tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0

        row.get_by_role("button", name="Cancel").click()
        cancelled = page.locator("#jobs tbody tr[data-status='cancelled']", has_text="crunch")
        expect(cancelled.locator(".status")).to_contain_text("cancelled")
        expect(cancelled).to_contain_text("cancelled")
        expect(page.locator("#notice")).to_contain_text("Done")

        # the task's own buttons: pause, then resume
        task_row = page.locator("#tasks tbody tr", has_text="crunch")
        task_row.get_by_role("button", name="Pause").click()
        expect(task_row.locator(".status")).to_contain_text("paused")
        task_row.get_by_role("button", name="Resume").click()
        expect(task_row.locator(".status")).not_to_contain_text("paused")


@pytest.mark.parametrize(("server", "face"), CASES)
def test_refusals(page: Page, server: str, face: str, tmp_path: Path) -> None:
    with serve(server, face, tmp_path) as base:
        task_id = post(base, "/control/add", {"name": "quiet"})["task_id"]
        page.goto(base + "/quiv/")
        expect(page.locator("#connection")).to_have_text("Live")
        token = page.locator('meta[name="quiv-csrf-token"]').get_attribute("content")
        assert token

        # no CSRF token: refused, even with the page's cookie
        refused = page.request.post(f"{base}/quiv/tasks/{task_id}/pause")
        assert refused.status == 403
        assert "CSRF" in refused.json()["error"]
        wrong = page.request.post(
            f"{base}/quiv/tasks/{task_id}/pause", headers={"X-CSRF-Token": "x" * 43}
        )
        assert wrong.status == 403
        assert page.request.get(f"{base}/quiv/tasks/{task_id}/pause").status == 405
        expect(
            page.locator("#tasks tbody tr", has_text="quiet").locator(".status")
        ).to_contain_text("active")

        # read-only: no buttons, and a forced POST with a valid token is refused
        page.goto(base + "/ro/")
        expect(page.locator("#connection")).to_have_text("Live")
        quiet = page.locator("#tasks tbody tr", has_text="quiet")
        expect(quiet).to_be_visible()
        expect(quiet.get_by_role("button")).to_have_count(0)
        ro_token = page.locator('meta[name="quiv-csrf-token"]').get_attribute("content")
        forced = page.request.post(
            f"{base}/ro/tasks/{task_id}/pause", headers={"X-CSRF-Token": str(ro_token)}
        )
        assert forced.status == 403
        assert "read-only" in forced.json()["error"]

        # no auth: everyone refused, the page says how to configure it
        response = page.goto(base + "/locked/")
        assert response is not None and response.status == 403
        expect(page.locator("h1")).to_have_text("Access denied")
        for path in ("/locked/api/jobs", "/locked/events", "/locked/static/dashboard.js"):
            assert page.request.get(base + path).status == 403, path
        assert page.request.post(f"{base}/locked/tasks/{task_id}/pause").status == 403
