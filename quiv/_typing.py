"""Type aliases shared by the package (strings, so Python 3.10 never evaluates them)."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

__all__ = ("Logger",)

#: what quiv accepts and uses as a logger
Logger: TypeAlias = "logging.Logger | logging.LoggerAdapter[Any]"

_ = (logging, Any)  # used by the string alias above
