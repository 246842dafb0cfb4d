"""Which async library runs the calling code: the one place quiv asks sniffio.

quiv runs on asyncio and trio. Code that must do something backend-specific
(a native task, a native time source, an aiosqlite connection) asks
:func:`current_backend`; code that may run outside any loop asks
:func:`backend_here` or :func:`running_loop_token`.
"""

from __future__ import annotations

import enum

import sniffio
from anyio.lowlevel import EventLoopToken, current_token

__all__ = ("ASYNCIO", "TRIO", "Backend", "backend_here", "current_backend", "running_loop_token")


class Backend(str, enum.Enum):
    """An async library quiv runs on; compares equal to its name (``"asyncio"``)."""

    ASYNCIO = "asyncio"
    TRIO = "trio"

    def __str__(self) -> str:  # the name, as anyio.run(backend=...) expects it
        return self.value


# The members as module constants, for the hot paths: before Python 3.12,
# ``Backend.ASYNCIO`` is a slow class-attribute look-up (about 0.2 µs).
ASYNCIO = Backend.ASYNCIO
TRIO = Backend.TRIO


def current_backend() -> Backend:
    """The async library running the caller: asyncio, or trio for any other.

    Costs one sniffio look-up (cheap enough for once per job).

    :raises sniffio.AsyncLibraryNotFoundError: outside any event loop
    """
    return ASYNCIO if sniffio.current_async_library() == "asyncio" else TRIO


def backend_here() -> Backend | None:
    """The async library running the caller, or ``None`` outside any loop or in
    one that quiv does not run on."""
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    return _BY_NAME.get(name)


_BY_NAME = {backend.value: backend for backend in Backend}


def running_loop_token() -> EventLoopToken | None:
    """The token of the event loop running in this thread, or ``None`` if there is none.

    anyio's worker threads (sync FastAPI endpoints, for example) run no loop.
    """
    if backend_here() is None:
        return None
    try:
        return current_token()
    except Exception:  # pragma: no cover - a loop anyio does not run here
        return None
