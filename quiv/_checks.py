"""Input validation: every public parameter is checked here.

Each checker raises :class:`~quiv.ConfigurationError` with a message that names
the parameter and shows the value, and never mutates anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import ConfigurationError, InvalidTimezoneError

__all__ = (
    "check_bool",
    "check_datetime",
    "check_int",
    "check_name",
    "check_number",
    "resolve_timezone",
)


def check_bool(value: object, name: str) -> bool:
    """Accept only ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ConfigurationError.bad_value(name, value, "a bool")
    return value


def check_name(value: object, name: str) -> str:
    """Accept a non-empty, non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError.bad_value(name, value, "a non-empty string")
    return value


def check_number(
    value: object,
    name: str,
    *,
    minimum: float = 0.0,
    exclusive: bool = False,
    allow_inf: bool = False,
) -> float:
    """Accept a real number (not a bool) that is ``>= minimum`` (``>`` if *exclusive*).

    NaN is always refused; infinity only with *allow_inf*.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError.bad_value(name, value, "a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the range of floats
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ConfigurationError.bad_value(name, value, "a finite number")
    if exclusive and not number > minimum:
        raise ConfigurationError.bad_value(name, value, f"> {minimum:g}")
    if not exclusive and not number >= minimum:
        raise ConfigurationError.bad_value(name, value, f">= {minimum:g}")
    return number


def check_int(value: object, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """Accept an ``int`` (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError.bad_value(name, value, "an int")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigurationError.bad_value(name, value, bounds)
    return value


def check_datetime(value: object, name: str) -> datetime:
    """Accept a :class:`~datetime.datetime`; naive means UTC. Return it in UTC."""
    if not isinstance(value, datetime):
        raise ConfigurationError.bad_value(name, value, "a datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. datetime.min at UTC+5: no such time in UTC
        raise ConfigurationError.bad_value(name, value, "a datetime within UTC's range") from None


def check_args(value: object, name: str = "args") -> tuple[Any, ...]:
    """Accept a tuple or list of positional arguments (``None`` means none)."""
    if value is None:
        return ()
    if not isinstance(value, (tuple, list)):
        raise ConfigurationError.bad_value(name, value, "a tuple")
    return tuple(value)


_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def check_kwargs(value: object, name: str = "kwargs") -> Mapping[str, Any]:
    """Accept a mapping with string keys (``None`` means none). Return a copy.

    Empty mappings all become one shared read-only mapping.
    """
    if not value:
        if value is None or isinstance(value, Mapping):
            return _NO_KWARGS
    if not isinstance(value, Mapping):
        raise ConfigurationError.bad_value(name, value, "a dict")
    for key in value:
        if not isinstance(key, str):
            raise ConfigurationError(f"{name} keys must be strings, got {key!r}")
    return dict(value)


def resolve_timezone(value: object) -> tzinfo:
    """Turn a time zone name or :class:`~datetime.tzinfo` into a ``tzinfo``.

    ``"UTC"``, ``"Z"`` and ``"GMT"`` (any case) give :data:`datetime.timezone.utc`;
    other names are looked up in the IANA database.

    :raises InvalidTimezoneError: for an unknown name or a value of another type
    """
    if isinstance(value, tzinfo):
        return value
    if not isinstance(value, str):
        raise InvalidTimezoneError(f"timezone must be a str or tzinfo, got {value!r}")
    key = value.strip()
    if key.upper() in {"UTC", "Z", "GMT"}:
        return timezone.utc
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidTimezoneError(f"timezone must name a known time zone, got {value!r}") from None
