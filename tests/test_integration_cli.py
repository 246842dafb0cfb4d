"""The README's command starts the example app; Ctrl+C stops it cleanly.

Each example runs in a subprocess as a user would start it (``python -m
examples.fastapi_app``, ``python -m examples.trio_app``), with ``--port 0``
and a private ``TMPDIR``: a download is started and watched over the
websocket, then SIGINT stops the server, which must exit with status 0,
cancel the running job and leave no temporary file behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx_ws")

import httpx
from anyio.abc import Process
from app_helpers import of_type, receive_until
from httpx_ws import aconnect_ws
from sync_helpers import WAIT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent
READY = {
    "fastapi_app": re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)"),
    "trio_app": re.compile(r"quiv trio example: (http://127\.0\.0\.1:\d+)"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the test's loop only drives clients; the servers run in subprocesses


async def read_until(process: Process, pattern: re.Pattern[str], output: list[str]) -> str:
    """Read the process's output until *pattern* matches; return its first group."""
    assert process.stdout is not None
    buffer = ""
    with anyio.fail_after(WAIT):
        while True:
            chunk = (await process.stdout.receive()).decode()
            output.append(chunk)
            buffer += chunk
            found = pattern.search(buffer)
            if found:
                return found.group(1)


async def read_rest(process: Process, output: list[str]) -> None:
    assert process.stdout is not None
    with anyio.fail_after(WAIT):
        output.extend([chunk.decode() async for chunk in process.stdout])


@pytest.mark.parametrize("example", sorted(READY))
async def test_example_serves_and_stops_on_ctrl_c(example: str, tmp_path: Path) -> None:
    if example == "trio_app":
        pytest.importorskip("trio")
        pytest.importorskip("hypercorn")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", f"examples.{example}", "--port", "0"]
    output: list[str] = []
    process = await anyio.open_process(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    async with process:
        try:
            url = await read_until(process, READY[example], output)
            async with httpx.AsyncClient(base_url=url) as client:
                assert "quiv example" in (await client.get("/")).text
                dashboard = await client.get("/quiv/")  # mounted, for local clients
                assert dashboard.status_code == 200
                assert "quiv dashboard" in dashboard.text
                async with aconnect_ws("/ws", client) as websocket:
                    assert await websocket.receive_json() == {"type": "hello"}
                    await client.post("/downloads", json={"media_id": 5, "chunk_seconds": 0.01})
                    await receive_until(websocket, of_type("progress", task="download"))
                (job,) = (await client.get("/jobs")).json()
                assert job["status"] == "running"
                assert os.listdir(tmp_path)  # the scheduler's private temporary database
            process.send_signal(signal.SIGINT)
            await read_rest(process, output)
            with anyio.fail_after(WAIT):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
    text = "".join(output)
    assert process.returncode == 0, text
    assert "Traceback" not in text
    # the running job saw its stop event; its log line carries its id
    assert f"[{job['id']}] examples.work: download of media 5 cancelled" in text
    assert os.listdir(tmp_path) == []
