"""quiv: in-process background tasks for async Python apps, on asyncio and trio."""

from __future__ import annotations

from ._version import __version__ as __version__
