"""Constructor settings: merging ``config=`` with keyword arguments, and validation."""

from __future__ import annotations

import logging
import os
from enum import Enum
from typing import Any

from ._checks import check_int, check_number, resolve_timezone
from ._errors import ConfigurationError
from ._models import QuivConfig

__all__ = ("UNSET", "Unset", "build_config")


class Unset(Enum):
    """Marks a keyword argument the caller did not pass."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset.UNSET

_MAX_POOL = 10_000
#: results are held in memory, and written to SQLite with ``db_path=``: 1 GiB at most
_MAX_RESULT = 2**30
_BACKENDS = ("asyncio", "trio")


def build_config(config: QuivConfig | None, explicit: dict[str, Any]) -> QuivConfig:
    """Merge *config* with the explicitly passed settings and validate the result.

    :raises ConfigurationError: if both *config* and an explicit setting are given,
        or if a setting is invalid
    """
    given = {name: value for name, value in explicit.items() if value is not UNSET}
    if config is not None:
        if not isinstance(config, QuivConfig):
            raise ConfigurationError.bad_value("config", config, "a QuivConfig or None")
        if given:
            names = ", ".join(sorted(given))
            raise ConfigurationError(
                f"pass settings either in config or as arguments, not both (got config and {names})"
            )
        result = config
    else:
        result = QuivConfig(**given)
    validate(result)
    return result


def validate(config: QuivConfig) -> None:
    check_int(config.pool_size, "pool_size", minimum=1, maximum=_MAX_POOL)
    check_number(config.history_retention_seconds, "history_retention_seconds", allow_inf=True)
    resolve_timezone(config.timezone)
    if config.logger is not None and not isinstance(
        config.logger, (logging.Logger, logging.LoggerAdapter)
    ):
        raise ConfigurationError.bad_value("logger", config.logger, "a logging.Logger or None")
    if config.db_path is not None and not isinstance(config.db_path, (str, os.PathLike)):
        raise ConfigurationError.bad_value("db_path", config.db_path, "a path or None")
    if isinstance(config.db_path, str) and not config.db_path.strip():
        raise ConfigurationError.bad_value("db_path", config.db_path, "a non-empty path")
    if config.worker_backend is not None and config.worker_backend not in _BACKENDS:
        raise ConfigurationError.bad_value(
            "worker_backend", config.worker_backend, "'asyncio', 'trio' or None"
        )
    # a class (``clock=FakeClock``) has the methods but cannot tell time
    if config.clock is not None and (
        isinstance(config.clock, type)
        or not callable(getattr(config.clock, "now", None))
        or not callable(getattr(config.clock, "sleep_until", None))
    ):
        raise ConfigurationError.bad_value(
            "clock", config.clock, "a quiv.abc.Clock (now, sleep_until, ...)"
        )
    if config.shutdown_timeout is not None:
        check_number(config.shutdown_timeout, "shutdown_timeout", allow_inf=True)
    check_int(config.max_result_bytes, "max_result_bytes", minimum=0, maximum=_MAX_RESULT)
    if not isinstance(config.host_mode, bool):
        raise ConfigurationError.bad_value("host_mode", config.host_mode, "True or False")
    if config.host_mode:
        path = None if config.db_path is None else os.fspath(config.db_path)
        if path is None or path == ":memory:" or path.startswith("file:"):
            raise ConfigurationError(
                "host_mode=True needs db_path= naming a file every process of the host"
                f" can open, got db_path={config.db_path!r}"
            )
