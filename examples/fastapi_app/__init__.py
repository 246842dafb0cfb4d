"""The example FastAPI app, on the sync face (``Quiv``), served by uvicorn.

Run it with ``uv run --extra fastapi --extra cron python -m examples.fastapi_app`` and
open http://127.0.0.1:8000 (``--timezone Europe/Berlin`` puts the nightly report's
02:30 in Berlin).
"""

from __future__ import annotations

from .app import create_app

__all__ = ("create_app",)
