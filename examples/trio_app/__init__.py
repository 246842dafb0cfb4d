"""The example app with ``AsyncQuiv``, served under trio by hypercorn.

Run it with
``uv run --extra fastapi --extra hypercorn --extra cron python -m examples.trio_app``,
or with hypercorn's own command:
``uv run --extra fastapi --extra hypercorn --extra cron hypercorn --worker-class trio examples.trio_app:app``.
"""

from __future__ import annotations

from .app import create_app

__all__ = ("app", "create_app")

#: for ``hypercorn examples.trio_app:app`` (creating it starts nothing)
app = create_app()
