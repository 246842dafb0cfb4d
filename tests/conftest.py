"""Fixtures for the scheduler tests (backends come from the root conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from scheduler_helpers import Gates, Recorder

from quiv import AsyncQuiv
from quiv.testing import FakeClock


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests are opt-in (``-m slow``), as the marker's description says."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="larger stress size; opt in with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only on ``await clock.advance(seconds)``."""
    return FakeClock()


@pytest.fixture
def gates() -> Iterator[Gates]:
    """Gates for blocking handlers; released at teardown so no thread is left waiting."""
    g = Gates()
    yield g
    g.release_all()


@pytest.fixture
async def scheduler(clock: FakeClock, gates: Gates) -> AsyncIterator[AsyncQuiv]:
    """A running scheduler on the fake clock, pool of 4."""
    async with AsyncQuiv(clock=clock, pool_size=4, shutdown_timeout=5) as s:
        try:
            yield s
        finally:
            gates.release_all()


@pytest.fixture
def recorder(scheduler: AsyncQuiv) -> Recorder:
    """Records every event of ``scheduler``."""
    return Recorder(scheduler)
