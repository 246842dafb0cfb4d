"""quiv.dashboard over HTTP (httpx on the ASGI app): auth, CSRF, read-only, reads, actions.

The live stream and the page itself are tested against real servers in
test_dashboard_live.py and test_dashboard_browser.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

pytest.importorskip("starlette")

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from sync_helpers import WAIT

from quiv import AsyncQuiv, ConfigurationError, Event, JobStatus, Quiv
from quiv.dashboard import allow_all, dashboard

CSRF = "quiv_dashboard_csrf"
Face = Callable[..., Any]


@asynccontextmanager
async def running(face: str) -> AsyncIterator[AsyncQuiv | Quiv]:
    if face == "async":
        async with AsyncQuiv(pool_size=4, shutdown_timeout=5) as scheduler:
            yield scheduler
    else:
        sync = Quiv(pool_size=4, shutdown_timeout=5)
        sync.start()
        try:
            yield sync
        finally:
            await anyio.to_thread.run_sync(sync.shutdown)


async def call(scheduler: AsyncQuiv | Quiv, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a scheduler method on either face from async code."""
    method = getattr(scheduler, name)
    if isinstance(scheduler, AsyncQuiv):
        result = method(*args, **kwargs)
        return await result if isinstance(result, Awaitable) else result
    return await anyio.to_thread.run_sync(lambda: method(*args, **kwargs))


@asynccontextmanager
async def client_for(app: Any, prefix: str = "/quiv") -> AsyncIterator[httpx.AsyncClient]:
    host = Starlette(routes=[Mount(prefix, app)])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def token_of(client: httpx.AsyncClient, prefix: str = "/quiv") -> str:
    page = await client.get(prefix + "/")
    assert page.status_code == 200
    token = page.cookies[CSRF]
    assert f'content="{token}"' in page.text
    return token


async def wait_for(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, WAIT), "timed out"


def blocking_with_progress(
    release: threading.Event, started: threading.Event
) -> Callable[..., Any]:
    def handler(_progress_hook: Callable[..., None], _stop_event: threading.Event) -> None:
        _progress_hook(done=3, total=10)
        started.set()
        while not (release.is_set() or _stop_event.is_set()):
            _stop_event.wait(0.01)

    return handler


# -- arguments ---------------------------------------------------------------------


async def test_bad_arguments_are_configuration_errors() -> None:
    async with AsyncQuiv() as scheduler:
        with pytest.raises(ConfigurationError, match=r"auth must be .*got 'yes'"):
            dashboard(scheduler, auth="yes")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"read_only must be .*got 1"):
            dashboard(scheduler, auth=allow_all, read_only=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="scheduler must be"):
        dashboard(object(), auth=allow_all)  # type: ignore[arg-type]


# -- auth ------------------------------------------------------------------------


async def test_without_auth_everyone_is_refused() -> None:
    async with AsyncQuiv() as scheduler, client_for(dashboard(scheduler, auth=None)) as client:
        page = await client.get("/quiv/")
        assert page.status_code == 403
        assert "allow_all" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        for path in (
            "/quiv/api/jobs",
            "/quiv/api/tasks",
            "/quiv/events",
            "/quiv/static/dashboard.js",
        ):
            assert (await client.get(path)).status_code == 403, path
        refused = await client.post("/quiv/jobs/x/cancel", headers={"x-csrf-token": "t" * 40})
        assert refused.status_code == 403


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_auth_callable_decides(kind: str) -> None:
    seen: list[str] = []

    def sync_auth(request: Request) -> bool:
        seen.append(request.url.path)
        return request.headers.get("x-user") == "admin"

    async def async_auth(request: Request) -> bool:
        return sync_auth(request)

    auth = sync_auth if kind == "sync" else async_auth
    async with AsyncQuiv() as scheduler, client_for(dashboard(scheduler, auth=auth)) as client:
        assert (await client.get("/quiv/api/stats")).status_code == 403
        allowed = await client.get("/quiv/api/stats", headers={"x-user": "admin"})
        assert allowed.status_code == 200
        assert allowed.json()["stats"]["loop_alive"] is True
    assert seen == ["/quiv/api/stats", "/quiv/api/stats"]


async def test_an_auth_callable_that_raises_refuses(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Request) -> bool:
        raise RuntimeError("auth backend down")

    async with AsyncQuiv() as scheduler, client_for(dashboard(scheduler, auth=broken)) as client:
        assert (await client.get("/quiv/api/stats")).status_code == 403
    assert "auth callable raised" in caplog.text


# -- the page and its files -------------------------------------------------------------


async def test_the_page_is_served_with_a_strict_policy_and_its_own_files() -> None:
    async with AsyncQuiv() as scheduler, client_for(dashboard(scheduler, auth=allow_all)) as client:
        redirect = await client.get("/quiv")
        assert redirect.status_code in (307, 308)
        page = await client.get("/quiv/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/quiv" in cookie
        assert "<script>" not in page.text and "http://" not in page.text.replace("http://app", "")
        assert 'src="static/dashboard.js"' in page.text
        script = await client.get("/quiv/static/dashboard.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text
        css = await client.get("/quiv/static/dashboard.css")
        assert css.headers["content-type"].startswith("text/css")
        assert (await client.get("/quiv/static/../_app.py")).status_code == 404
        assert (await client.get("/quiv/static/index.html")).status_code == 404


async def test_a_nested_mount_scopes_the_cookie_to_its_path() -> None:
    async with AsyncQuiv() as scheduler:
        app = dashboard(scheduler, auth=allow_all)
        async with client_for(app, "/admin/tools/quiv") as client:
            page = await client.get("/admin/tools/quiv/")
            assert "path=/admin/tools/quiv" in page.headers["set-cookie"].lower()
            token = page.cookies[CSRF]
            task_id = await scheduler.add_task("t", lambda: None, interval=60, delay=60)
            paused = await client.post(
                f"/admin/tools/quiv/tasks/{task_id}/pause", headers={"x-csrf-token": token}
            )
            assert paused.status_code == 200


# -- CSRF and read-only ----------------------------------------------------------------


async def test_actions_need_the_csrf_token_and_the_same_origin() -> None:
    async with AsyncQuiv() as scheduler, client_for(dashboard(scheduler, auth=allow_all)) as client:
        task_id = await scheduler.add_task("t", lambda: None, interval=60, delay=60)
        url = f"/quiv/tasks/{task_id}/pause"
        token = await token_of(client)
        assert (await client.post(url)).status_code == 403
        wrong = await client.post(url, headers={"x-csrf-token": "x" + token[1:]})
        assert wrong.status_code == 403
        assert "CSRF" in wrong.json()["error"]
        other_site = await client.post(
            url, headers={"x-csrf-token": token, "origin": "http://evil.example"}
        )
        assert other_site.status_code == 403
        cross = await client.post(
            url, headers={"x-csrf-token": token, "sec-fetch-site": "cross-site"}
        )
        assert cross.status_code == 403
        assert (await scheduler.get_task(task_id)).status == "active"
        ok = await client.post(url, headers={"x-csrf-token": token, "origin": "http://app"})
        assert ok.status_code == 200
        assert (await scheduler.get_task(task_id)).status == "paused"
        assert (await client.get(url)).status_code == 405  # never a GET


async def test_read_only_refuses_every_action_at_the_router() -> None:
    app = None
    async with AsyncQuiv() as scheduler:
        app = dashboard(scheduler, auth=allow_all, read_only=True)
        async with client_for(app) as client:
            task_id = await scheduler.add_task("t", lambda: None, interval=60, delay=60)
            token = await token_of(client)
            assert 'name="quiv-read-only" content="true"' in (await client.get("/quiv/")).text
            for path in (
                f"/quiv/tasks/{task_id}/run",
                f"/quiv/tasks/{task_id}/pause",
                f"/quiv/tasks/{task_id}/remove",
                "/quiv/jobs/whatever/cancel",
                "/quiv/no/such/route",
            ):
                refused = await client.post(path, headers={"x-csrf-token": token})
                assert refused.status_code == 403, path
                assert "read-only" in refused.json()["error"]
            put = await client.put(f"/quiv/tasks/{task_id}/pause", headers={"x-csrf-token": token})
            assert put.status_code == 403
            assert (await scheduler.get_task(task_id)).status == "active"
            assert (await client.get("/quiv/api/tasks")).status_code == 200


# -- reads and actions, on both faces ---------------------------------------------------


@pytest.mark.parametrize("face", ["async", "sync"])
async def test_actions_reach_the_scheduler(face: str) -> None:
    release, started = threading.Event(), threading.Event()
    async with running(face) as scheduler:
        async with client_for(dashboard(scheduler, auth=allow_all)) as client:
            token = await token_of(client)
            headers = {"x-csrf-token": token}
            completed = threading.Event()
            await call(scheduler, "add_listener", Event.JOB_COMPLETED, lambda *_: completed.set())
            task_id = await call(
                scheduler,
                "add_task",
                "work",
                blocking_with_progress(release, started),
                interval=3600,
            )
            with anyio.fail_after(WAIT):
                await anyio.to_thread.run_sync(started.wait)
            running_jobs = (await client.get("/quiv/api/jobs?status=running")).json()["jobs"]
            assert [job["task_name"] for job in running_jobs] == ["work"]
            job = running_jobs[0]
            assert job["bar"] == {"done": 3.0, "total": 10.0, "fraction": 0.3}
            cancel = await client.post(f"/quiv/jobs/{job['id']}/cancel", headers=headers)
            assert cancel.status_code == 200
            ended = await call(scheduler, "wait_for_job", job["id"], WAIT)
            assert ended.status == JobStatus.CANCELLED
            again = await client.post(f"/quiv/jobs/{job['id']}/cancel", headers=headers)
            assert again.status_code == 409
            detail = (await client.get(f"/quiv/api/jobs/{job['id']}")).json()["job"]
            assert detail["status"] == "cancelled" and detail["cancel_reason"] == "cancelled"

            paused = await client.post(f"/quiv/tasks/{task_id}/pause", headers=headers)
            assert paused.status_code == 200, paused.text
            assert (await call(scheduler, "get_task", task_id)).status == "paused"
            not_active = await client.post(f"/quiv/tasks/{task_id}/run", headers=headers)
            assert not_active.status_code == 409
            release.set()
            resumed = await client.post(f"/quiv/tasks/{task_id}/resume", headers=headers)
            assert resumed.status_code == 200
            assert (await call(scheduler, "get_task", task_id)).status != "paused"
            await wait_for(completed)  # resuming ran it at once
            completed.clear()
            run = await client.post(f"/quiv/tasks/{task_id}/run", headers=headers)
            assert run.status_code == 200
            await wait_for(completed)
            removed = await client.post(f"/quiv/tasks/{task_id}/remove", headers=headers)
            assert removed.status_code == 200
            assert (await client.get("/quiv/api/tasks")).json()["tasks"] == []
            gone = await client.post(f"/quiv/tasks/{task_id}/remove", headers=headers)
            assert gone.status_code == 404
            assert (await client.get("/quiv/api/jobs/nope")).status_code == 404


async def test_jobs_are_filtered_and_paged() -> None:
    async with AsyncQuiv(pool_size=4) as scheduler:
        async with client_for(dashboard(scheduler, auth=allow_all)) as client:
            ok_id = await scheduler.add_task("ok", lambda: {"rows": 1}, run_once=True)
            ok_job = await scheduler.wait_for_task(ok_id, WAIT)

            def fail() -> None:
                raise ValueError("<b>bad</b> input")

            bad_id = await scheduler.add_task("bad", fail, run_once=True)
            bad_job = await scheduler.wait_for_task(bad_id, WAIT)
            for _ in range(5):
                await scheduler.wait_for_task(
                    await scheduler.add_task("many", lambda: "x" * 1000, run_once=True), WAIT
                )

            def jobs(query: str) -> Awaitable[httpx.Response]:
                return client.get("/quiv/api/jobs?" + query)

            everything = (await jobs("limit=200")).json()
            assert len(everything["jobs"]) == 7 and everything["has_more"] is False
            failed = (await jobs("status=failed")).json()["jobs"]
            assert [job["id"] for job in failed] == [bad_job.id]
            assert failed[0]["error_type"] == "ValueError"
            assert (
                failed[0]["error_message"] == "ValueError: <b>bad</b> input"
            )  # the page shows text
            detail = (await client.get(f"/quiv/api/jobs/{bad_job.id}")).json()["job"]
            assert "Traceback" in detail["traceback"]
            by_task = (await jobs(f"task_id={ok_id}")).json()["jobs"]
            assert [job["result"] for job in by_task] == ['{"rows": 1}']
            assert by_task[0]["id"] == ok_job.id
            first = (await jobs("task_id=&limit=2")).json()
            second = (await jobs("limit=2&offset=2")).json()
            assert first["has_more"] and second["has_more"]
            assert {j["id"] for j in first["jobs"]}.isdisjoint(j["id"] for j in second["jobs"])
            long_result = (await jobs("limit=1")).json()["jobs"][0]["result"]
            assert len(long_result) == 300 and long_result.endswith("\u2026")
            assert len((await jobs("window=3600")).json()["jobs"]) == 7
            for bad in ("status=nope", "limit=0", "limit=201", "offset=-1", "window=-5", "limit=x"):
                refused = await jobs(bad)
                assert refused.status_code == 400, bad
                assert "must be" in refused.json()["error"]


async def test_tasks_show_their_schedule_in_words() -> None:
    pytest.importorskip("cronsim")
    async with AsyncQuiv(timezone="Europe/Berlin") as scheduler:
        async with client_for(dashboard(scheduler, auth=allow_all)) as client:
            await scheduler.add_task("nightly", lambda: None, cron="30 2 * * 1-5")
            await scheduler.add_task("often", lambda: None, interval=90, delay=90)
            tasks = {t["name"]: t for t in (await client.get("/quiv/api/tasks")).json()["tasks"]}
            assert "02:30" in tasks["nightly"]["schedule"]
            assert tasks["nightly"]["timezone"] == "Europe/Berlin"
            assert tasks["often"]["schedule"] == "Every 90 s"
            assert tasks["often"]["next_run_at"] is not None


async def test_a_stopped_scheduler_answers_503() -> None:
    scheduler = AsyncQuiv()
    async with scheduler:
        app = dashboard(scheduler, auth=allow_all)
    async with client_for(app) as client:
        assert (await client.get("/quiv/api/jobs")).status_code == 503
        assert (await client.get("/quiv/api/stats")).status_code == 503
