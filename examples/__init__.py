"""Runnable examples: ``python -m examples.fastapi_app`` and ``python -m examples.trio_app``."""
