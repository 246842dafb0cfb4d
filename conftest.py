"""Root pytest configuration: every async test runs on asyncio and on trio."""

from __future__ import annotations

import importlib.util

import pytest

_BACKENDS = [
    pytest.param(("asyncio", {"debug": False}), id="asyncio"),
    pytest.param(
        ("trio", {}),
        id="trio",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("trio") is None, reason="trio is not installed"
        ),
    ),
]


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Run each async test once per backend."""
    backend: tuple[str, dict[str, object]] = request.param
    return backend
