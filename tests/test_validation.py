"""Bad input: every parameter is checked, the error names it and shows the value,
and nothing is registered on failure."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timezone
from typing import Any

import pytest
from scheduler_helpers import Recorder, settle

from quiv import (
    AsyncQuiv,
    ConfigurationError,
    Event,
    HandlerRegistrationError,
    InvalidTimezoneError,
    QuivConfig,
    QuivError,
)
from quiv._checks import check_bool, check_datetime, check_int, check_number
from quiv.testing import FakeClock


def handler() -> None:
    pass


NAN = float("nan")
INF = float("inf")

# (parameter, bad value) for add_task; every other argument is valid
BAD_ADD: list[tuple[str, Any]] = [
    ("task_name", ""),
    ("task_name", "   "),
    ("task_name", None),
    ("task_name", 5),
    ("task_name", b"name"),
    ("func", None),
    ("func", 5),
    ("func", "print"),
    ("interval", 0),
    ("interval", -1),
    ("interval", NAN),
    ("interval", INF),
    ("interval", -INF),
    ("interval", "5"),
    ("interval", True),
    ("interval", False),
    ("interval", [5]),
    ("interval", 1j),
    ("delay", -1),
    ("delay", NAN),
    ("delay", INF),
    ("delay", "5"),
    ("delay", True),
    ("run_once", 1),
    ("run_once", "yes"),
    ("run_once", None),
    ("fixed_interval", 0),
    ("fixed_interval", "no"),
    ("fixed_interval", None),
    ("args", "abc"),
    ("args", 5),
    ("args", {"a": 1}),
    ("args", {1, 2}),
    ("kwargs", [("a", 1)]),
    ("kwargs", "a=1"),
    ("kwargs", {1: 2}),
    ("progress_callback", 5),
    ("progress_callback", "callback"),
    ("run_at", "2030-01-01T00:00:00"),
    ("run_at", 1_900_000_000),
    ("run_at", date(2030, 1, 1)),
    ("timeout", 0),
    ("timeout", -1),
    ("timeout", NAN),
    ("timeout", INF),
    ("timeout", "1"),
    ("timeout", True),
    ("max_retries", -1),
    ("max_retries", 1.5),
    ("max_retries", 2.0),
    ("max_retries", True),
    ("max_retries", "3"),
    ("max_retries", None),
    ("max_retries", 10**9),
    ("retry_backoff", 0),
    ("retry_backoff", -1),
    ("retry_backoff", NAN),
    ("retry_backoff", INF),
    ("retry_backoff", True),
    ("retry_backoff", None),
    ("jitter", -0.5),
    ("jitter", NAN),
    ("jitter", INF),
    ("jitter", True),
    ("jitter", "1"),
    ("jitter", None),
    ("key", ""),
    ("key", "   "),
    ("key", 5),
    ("key", b"key"),
    ("key", "k" * 201),
]


def _shown(value: Any) -> str:
    if isinstance(value, dict) and value and not all(isinstance(k, str) for k in value):
        return repr(next(k for k in value if not isinstance(k, str)))  # the offending key
    return repr(value)


async def assert_nothing_registered(scheduler: AsyncQuiv, recorder: Recorder) -> None:
    await settle()
    assert await scheduler.get_all_tasks(include_run_once=True) == []
    assert recorder.count(Event.TASK_ADDED) == 0
    assert (await scheduler.stats()).active_jobs == 0


@pytest.mark.parametrize(("name", "value"), BAD_ADD, ids=[f"{n}={v!r}" for n, v in BAD_ADD])
async def test_add_task_rejects(
    scheduler: AsyncQuiv, recorder: Recorder, name: str, value: Any
) -> None:
    params: dict[str, Any] = {"task_name": "t", "func": handler, "interval": 10}
    params[name] = value
    with pytest.raises(QuivError) as info:
        await scheduler.add_task(**params)
    assert isinstance(info.value, (ConfigurationError, HandlerRegistrationError))
    message = str(info.value)
    assert name in message
    assert _shown(value) in message
    await assert_nothing_registered(scheduler, recorder)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"interval": None}, ["interval"]),
        ({"interval": None, "run_once": False}, ["interval"]),
        (
            {"delay": 5, "run_at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
            ["delay", "run_at"],
        ),
    ],
)
async def test_add_task_rejects_bad_combinations(
    scheduler: AsyncQuiv, recorder: Recorder, params: dict[str, Any], names: list[str]
) -> None:
    base: dict[str, Any] = {"task_name": "t", "func": handler, "interval": 10}
    with pytest.raises(ConfigurationError) as info:
        await scheduler.add_task(**{**base, **params})
    for name in names:
        assert name in str(info.value)
    await assert_nothing_registered(scheduler, recorder)


async def test_errors_are_subclasses_of_builtin_kinds() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(HandlerRegistrationError, TypeError)
    assert issubclass(InvalidTimezoneError, ConfigurationError)


async def test_valid_edge_values_are_accepted(scheduler: AsyncQuiv) -> None:
    task_id = await scheduler.add_task(
        "edge",
        handler,
        interval=1e-3,
        delay=0,
        args=[1, 2],  # a list is taken as a tuple
        kwargs={},
        timeout=1e-3,
        max_retries=0,
        retry_backoff=1e-6,
        jitter=0,
    )
    task = await scheduler.get_task(task_id)
    assert task.args == (1, 2)
    huge = await scheduler.add_task("huge", handler, interval=1e300, delay=1e300)
    assert (await scheduler.get_task(huge)).next_run_at is not None  # clamped, no overflow
    once = await scheduler.add_task("once", handler, run_once=True, delay=10)
    assert (await scheduler.get_all_tasks(include_run_once=True, task_name="once"))[0].id == once


# -- constructor --------------------------------------------------------------------

BAD_INIT: list[tuple[str, Any]] = [
    ("pool_size", 0),
    ("pool_size", -1),
    ("pool_size", 1.5),
    ("pool_size", True),
    ("pool_size", "4"),
    ("pool_size", None),
    ("pool_size", 10**6),
    ("history_retention_seconds", -1),
    ("history_retention_seconds", NAN),
    ("history_retention_seconds", "1"),
    ("history_retention_seconds", True),
    ("history_retention_seconds", None),
    ("timezone", "Mars/Olympus_Mons"),
    ("timezone", 5),
    ("timezone", None),
    ("logger", "quiv"),
    ("logger", 5),
    ("db_path", 5),
    ("db_path", ""),
    ("worker_backend", "curio"),
    ("worker_backend", 5),
    ("clock", object()),
    ("clock", 5),
    ("shutdown_timeout", -1),
    ("shutdown_timeout", NAN),
    ("shutdown_timeout", "5"),
    ("shutdown_timeout", True),
    ("max_result_bytes", -1),
    ("max_result_bytes", 1.5),
    ("max_result_bytes", NAN),
    ("max_result_bytes", "65536"),
    ("max_result_bytes", True),
    ("max_result_bytes", None),
    ("max_result_bytes", 2**31),
]


@pytest.mark.parametrize(("name", "value"), BAD_INIT, ids=[f"{n}={v!r}" for n, v in BAD_INIT])
def test_constructor_rejects(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncQuiv(**{name: value})
    assert name in str(info.value)
    assert _shown(value) in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        AsyncQuiv(QuivConfig(**{name: value}))
    assert name in str(info.value)


def test_timezone_errors_are_invalid_timezone_errors() -> None:
    with pytest.raises(InvalidTimezoneError, match="Nowhere/Land"):
        AsyncQuiv(timezone="Nowhere/Land")


def test_config_and_explicit_settings_are_exclusive() -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        AsyncQuiv(QuivConfig(), pool_size=3)
    with pytest.raises(ConfigurationError, match="config"):
        AsyncQuiv({"pool_size": 3})  # type: ignore[arg-type]


def test_valid_constructor_settings() -> None:
    s = AsyncQuiv(
        pool_size=2,
        history_retention_seconds=math.inf,
        timezone="Europe/Berlin",
        logger=logging.getLogger("test"),
        db_path=":memory:",
        worker_backend="asyncio",
        clock=FakeClock(),
        shutdown_timeout=0,
    )
    assert s.config.pool_size == 2
    assert str(s.timezone) == "Europe/Berlin"
    config = QuivConfig(pool_size=3)
    assert AsyncQuiv(config).config is config
    assert AsyncQuiv(timezone="utc").timezone is timezone.utc


@pytest.mark.parametrize("timeout", [-1, NAN, "1", True])
async def test_shutdown_rejects_bad_timeouts(scheduler: AsyncQuiv, timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        await scheduler.shutdown(timeout)
    assert scheduler.is_running


async def test_listener_registration_is_checked(scheduler: AsyncQuiv) -> None:
    with pytest.raises(ConfigurationError, match="event"):
        scheduler.add_listener("job_completed", print)  # type: ignore[arg-type]
    with pytest.raises(HandlerRegistrationError, match="callback"):
        scheduler.add_listener(Event.JOB_COMPLETED, 5)  # type: ignore[arg-type]
    scheduler.remove_listener(Event.JOB_COMPLETED, print)  # unknown: ignored


# -- the checkers themselves -----------------------------------------------------------


@pytest.mark.parametrize("value", [True, 1, "1", None, 1.0])
def test_check_bool(value: Any) -> None:
    if isinstance(value, bool):
        assert check_bool(value, "flag") is value
    else:
        with pytest.raises(ConfigurationError, match=r"flag must be a bool, got "):
            check_bool(value, "flag")


def test_check_number_bounds() -> None:
    assert check_number(0, "x") == 0.0
    assert check_number(2, "x", minimum=2) == 2.0
    with pytest.raises(ConfigurationError, match=r"x must be > 2, got 2"):
        check_number(2, "x", minimum=2, exclusive=True)
    assert check_number(INF, "x", allow_inf=True) == INF
    with pytest.raises(ConfigurationError, match="finite"):
        check_number(INF, "x")
    with pytest.raises(ConfigurationError, match="finite"):
        check_number(NAN, "x", allow_inf=True)


def test_check_int_bounds() -> None:
    assert check_int(5, "n", maximum=5) == 5
    with pytest.raises(ConfigurationError, match="between 0 and 5, got 6"):
        check_int(6, "n", maximum=5)


def test_check_datetime_converts_to_utc() -> None:
    naive = datetime(2030, 1, 1, 12, 0)
    assert check_datetime(naive, "t") == datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    aware = datetime.fromisoformat("2030-01-01T14:00:00+02:00")
    converted = check_datetime(aware, "t")
    assert converted == aware
    assert converted.tzinfo is timezone.utc
