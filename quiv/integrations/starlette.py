"""Run a scheduler for as long as a Starlette or FastAPI app runs: a one-line lifespan.

::

    from fastapi import FastAPI
    from quiv import AsyncQuiv
    from quiv.integrations.starlette import lifespan

    app = FastAPI(lifespan=lifespan(AsyncQuiv(timezone="UTC")))

Needs Starlette (FastAPI depends on it): ``pip install "quiv[fastapi]"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

try:
    from starlette.applications import Starlette
except ImportError as _missing:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "quiv.integrations.starlette needs Starlette (or FastAPI): pip install 'quiv[fastapi]'"
    ) from _missing

from .._checks import check_number
from .._config import UNSET, Unset
from .._errors import ConfigurationError
from .._faces.async_face import AsyncQuiv
from .._faces.sync_face import Quiv

__all__ = ("lifespan",)


def lifespan(
    scheduler: AsyncQuiv | Quiv,
    *,
    shutdown_timeout: float | None | Unset = UNSET,
    state_name: str = "scheduler",
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Return a lifespan that runs *scheduler* while the app runs.

    At startup the scheduler is started on the server's event loop (asyncio
    or trio), which becomes its main loop for progress callbacks, listeners
    and :func:`~quiv.run_on_main`, and it is stored on ``app.state`` (as
    ``app.state.scheduler`` by default, ``request.app.state.scheduler`` in an
    endpoint). At shutdown it is shut down, waiting up to *shutdown_timeout*
    seconds for running jobs.

    An :class:`~quiv.AsyncQuiv` is entered with ``async with`` (its methods are
    awaited in ``async def`` endpoints); a :class:`~quiv.Quiv` is started with
    ``start()`` (its methods are plain calls, from ``def`` endpoints too).
    Either runs once, so create the app, its lifespan and its scheduler
    together. To combine it with a lifespan of your own, enter it there:
    ``async with lifespan(scheduler)(app): ...``.

    :param scheduler: the scheduler to run
    :param shutdown_timeout: seconds to wait for running jobs at shutdown;
        ``None`` waits for all; default: the scheduler's ``shutdown_timeout``
    :param state_name: the attribute of ``app.state`` that holds the scheduler
    :raises ConfigurationError: if *scheduler* is neither an ``AsyncQuiv`` nor a
        ``Quiv``, or for an invalid *shutdown_timeout*
    """
    if not isinstance(scheduler, (AsyncQuiv, Quiv)):
        raise ConfigurationError.bad_value("scheduler", scheduler, "an AsyncQuiv or a Quiv")
    if shutdown_timeout is not UNSET and shutdown_timeout is not None:
        check_number(shutdown_timeout, "shutdown_timeout", allow_inf=True)

    @asynccontextmanager
    async def run_scheduler(app: Starlette) -> AsyncIterator[None]:
        setattr(app.state, state_name, scheduler)
        if isinstance(scheduler, AsyncQuiv):
            async with scheduler:
                try:
                    yield
                finally:
                    await scheduler.shutdown(shutdown_timeout)
        else:
            scheduler.start()
            try:
                yield
            finally:
                scheduler.shutdown(shutdown_timeout)

    return run_scheduler
