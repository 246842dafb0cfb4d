"""quiv's pytest plugin: the fixtures ``quiv_clock``, ``quiv_scheduler``, ``quiv_sync_scheduler``.

Registered through the ``pytest11`` entry point, so installing quiv is enough
(``-p no:quiv`` turns it off). It defines three fixtures and nothing else (no
hooks, no options), and it imports nothing of quiv until a test uses one of
them: a session that does not costs nothing. See docs/testing.md.

Its source lives here, in ``quiv/_testkit/``, but the wheel installs it as the
top-level module ``_quiv_pytest`` (``force-include`` in pyproject.toml): a
module inside ``quiv`` would import the whole package (some 70 ms) into every
pytest session of every project that has quiv installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from quiv import AsyncQuiv, Quiv
    from quiv.testing import VirtualClock


@pytest.fixture
def quiv_clock() -> VirtualClock:
    """A fresh :class:`quiv.testing.VirtualClock` at its default start (2026-01-01 UTC).

    Override it (a fixture of this name in your conftest.py) to start elsewhere.
    """
    from quiv._testkit import fixtures

    return fixtures.clock()


@pytest.fixture
async def quiv_scheduler(
    quiv_clock: VirtualClock, anyio_backend: object
) -> AsyncIterator[AsyncQuiv]:
    """A running :class:`quiv.AsyncQuiv` on the test's anyio backend, on ``quiv_clock``.

    Its job history is in memory; it is shut down after the test, failed or not.
    """
    from quiv._testkit import fixtures

    async for scheduler in fixtures.async_scheduler(quiv_clock):
        yield scheduler


@pytest.fixture
def quiv_sync_scheduler(quiv_clock: VirtualClock, request: pytest.FixtureRequest) -> Iterator[Quiv]:
    """A running :class:`quiv.Quiv` on ``quiv_clock``, for sync tests.

    Its loop thread runs the backend of the test's ``anyio_backend`` if the test
    uses that fixture, asyncio otherwise. Move time with
    ``quiv_clock.advance_blocking(...)``. It is shut down after the test, failed or not.
    """
    from quiv._testkit import fixtures

    backend = "asyncio"
    if "anyio_backend" in request.fixturenames:
        backend = fixtures.backend_name(request.getfixturevalue("anyio_backend"))
    yield from fixtures.sync_scheduler(quiv_clock, backend)
