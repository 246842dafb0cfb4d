"""The example FastAPI app, on the sync face (``Quiv``), served by uvicorn.

Run it with ``uv run --extra fastapi python -m examples.fastapi_app`` and open
http://127.0.0.1:8000.
"""

from __future__ import annotations

from .app import create_app

__all__ = ("create_app",)
