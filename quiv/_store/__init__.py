"""Where task and job records live: the :class:`Store` seam and its implementations."""

from __future__ import annotations

from ._base import JobQuery, Store
from ._memory import MemoryStore
from ._sqlite import SQLiteStore

__all__ = ("JobQuery", "MemoryStore", "SQLiteStore", "Store")
