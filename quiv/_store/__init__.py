"""Where task and job records live: the :class:`Store` seam and its implementations.

The implementations are imported on first use, so ``import quiv`` does not pay
for aiosqlite and the SQL layer before a scheduler starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import JobQuery, Store

if TYPE_CHECKING:
    from ._memory import MemoryStore
    from ._sqlite import SQLiteStore

__all__ = ("JobQuery", "MemoryStore", "SQLiteStore", "Store")


def __getattr__(name: str) -> Any:
    if name == "MemoryStore":
        from ._memory import MemoryStore

        return MemoryStore
    if name == "SQLiteStore":
        from ._sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
