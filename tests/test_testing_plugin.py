"""The pytest plugin (``_quiv_pytest``, through the ``pytest11`` entry point), run by pytester."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

# Each run is a fresh interpreter: the plugin must come from the entry point alone.
_HAS_TRIO = importlib.util.find_spec("trio") is not None
_BACKENDS = ["asyncio", "trio"] if _HAS_TRIO else ["asyncio"]  # CI's asyncio-only job

_CONFTEST = f"""
import pytest

@pytest.fixture(params={_BACKENDS!r})
def anyio_backend(request):
    return request.param
"""

_TESTS = """
import time
from datetime import datetime, timedelta, timezone

import pytest
from quiv import AsyncQuiv, Quiv, current_job
from quiv.testing import VirtualClock, capture_events, run_until_idle

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def test_async_fixtures(quiv_scheduler, quiv_clock, anyio_backend):
    assert isinstance(quiv_scheduler, AsyncQuiv) and quiv_scheduler.is_running
    assert quiv_scheduler.config.clock is quiv_clock
    assert quiv_clock.wall_now() == START
    with capture_events(quiv_scheduler) as events:
        await quiv_scheduler.add_task("tick", lambda: None, interval=60)
        await quiv_clock.advance(timedelta(hours=1))
    events.assert_ran("tick", times=61)


def test_sync_fixture(quiv_sync_scheduler, quiv_clock):
    assert isinstance(quiv_sync_scheduler, Quiv) and quiv_sync_scheduler.is_running
    with capture_events(quiv_sync_scheduler) as events:
        quiv_sync_scheduler.add_task("nap", lambda: current_job().sleep(30), run_once=True)
        quiv_clock.advance_blocking(60)
    events.assert_ran("nap", times=1)
    (job,) = quiv_sync_scheduler.get_all_jobs()
    assert job.status == "completed"


def test_sync_fixture_on_each_backend(quiv_sync_scheduler, anyio_backend):
    assert f"backend={anyio_backend}>" in repr(quiv_sync_scheduler)
"""

_FAILING = """
import pytest

seen = {}


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_fails(quiv_scheduler, anyio_backend):
    seen["async"] = quiv_scheduler
    raise AssertionError("on purpose")


def test_sync_fails(quiv_sync_scheduler):
    seen["sync"] = quiv_sync_scheduler
    raise AssertionError("on purpose")


def test_both_were_stopped():
    assert not seen["async"].is_running
    assert not seen["sync"].is_running


def test_each_test_gets_a_fresh_one(quiv_sync_scheduler):
    assert quiv_sync_scheduler is not seen["sync"]
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "anyio", "-p", "no:cacheprovider", "-o", "anyio_mode=auto", *args, timeout=120
    )


def test_the_plugin_is_registered_by_its_entry_point() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "quiv"]
    assert plugin.value == "_quiv_pytest"


def test_the_fixtures_work_on_both_faces_and_backends(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(_CONFTEST)
    pytester.makepyfile(test_kit=_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=1 + 2 * len(_BACKENDS))


def test_schedulers_are_stopped_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_failing=_FAILING)
    result = _run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)


def test_a_session_that_uses_no_fixture_imports_no_quiv(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_plain():
            assert "_quiv_pytest" in sys.modules
            assert not [m for m in sys.modules if m == "quiv" or m.startswith("quiv.")]
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_the_plugin_module_imports_nothing_of_quiv() -> None:
    code = "import sys, _quiv_pytest; assert 'quiv' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
