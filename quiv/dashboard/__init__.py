"""A dashboard for a quiv scheduler: a Starlette app to mount in your own.

::

    from fastapi import FastAPI
    from quiv import AsyncQuiv
    from quiv.dashboard import dashboard
    from quiv.integrations.starlette import lifespan

    scheduler = AsyncQuiv()
    app = FastAPI(lifespan=lifespan(scheduler))
    app.mount("/quiv", dashboard(scheduler, auth=lambda request: is_admin(request)))

The page at the mount point lists the tasks and the jobs (running and
recent, filtered and paged), with live progress bars, and offers the
actions: cancel a job; run, pause, resume or remove a task. Updates arrive
as server-sent events. Needs the ``quiv[dashboard]`` extra (Starlette).
See the Dashboard page of the docs.
"""

from __future__ import annotations

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
except ImportError as _missing:  # pragma: no cover - exercised without the extra
    raise ImportError("quiv.dashboard needs Starlette: pip install 'quiv[dashboard]'") from _missing

from collections.abc import Awaitable, Callable

from .._errors import ConfigurationError
from .._faces.async_face import AsyncQuiv
from .._faces.sync_face import Quiv
from ._app import build_app

__all__ = ("allow_all", "dashboard")


def allow_all(request: Request) -> bool:
    """An ``auth`` callable that lets every request in: for local development only.

    Anyone who can reach the server can then see every job and act on it.
    """
    return True


def dashboard(
    scheduler: AsyncQuiv | Quiv,
    *,
    auth: Callable[[Request], bool | Awaitable[bool]] | None,
    read_only: bool = False,
) -> Starlette:
    """Return the dashboard of *scheduler*, a Starlette app to mount.

    ``app.mount("/quiv", dashboard(scheduler, auth=...))`` serves the page at
    ``/quiv/``; the actions are POSTs to ``jobs/{job_id}/cancel`` and
    ``tasks/{task_id}/run`` (``pause``, ``resume``, ``remove``) under it,
    each needing the page's CSRF token. Run the scheduler for as long as the
    app runs (:func:`quiv.integrations.starlette.lifespan`); the dashboard
    serves on the same server, under uvicorn (asyncio) or hypercorn (trio).

    :param scheduler: the scheduler to show, an :class:`~quiv.AsyncQuiv`
        (served on the loop that runs it) or a :class:`~quiv.Quiv`
    :param auth: decides whether a request may use the dashboard: called with
        the Starlette ``Request`` of every request (page, data, stream and
        actions), returning ``True`` to let it in, sync or async. ``None``
        refuses everyone (with a page that says how to configure it); pass
        :func:`allow_all` to let everyone in on a local machine
    :param read_only: refuse every action (any method but GET and HEAD) at
        the router, whatever the page shows; the page hides its buttons
    :raises ConfigurationError: if *scheduler* is not a scheduler, *auth* is
        neither callable nor ``None``, or *read_only* is not a bool
    """
    if not isinstance(scheduler, (AsyncQuiv, Quiv)):
        raise ConfigurationError.bad_value("scheduler", scheduler, "an AsyncQuiv or a Quiv")
    if auth is not None and not callable(auth):
        raise ConfigurationError.bad_value(
            "auth", auth, "a callable taking the request (or quiv.dashboard.allow_all)"
        )
    if not isinstance(read_only, bool):
        raise ConfigurationError.bad_value("read_only", read_only, "True or False")
    return build_app(scheduler, auth, read_only)
