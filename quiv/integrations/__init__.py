"""Optional integrations with web frameworks; each module needs its framework installed.

- :mod:`quiv.integrations.starlette` — a lifespan for Starlette and FastAPI apps.
"""
