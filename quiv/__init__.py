"""quiv: in-process background tasks for async Python apps, on asyncio and trio.

:class:`AsyncQuiv` is the scheduler for async code (``async with``);
:class:`Quiv` is its sync face for scripts and ``start()``/``shutdown()`` apps.
"""

from __future__ import annotations

from ._checks import resolve_timezone as resolve_timezone
from ._context import JobContext as JobContext
from ._context import current_job as current_job
from ._errors import ConfigurationError as ConfigurationError
from ._errors import HandlerRegistrationError as HandlerRegistrationError
from ._errors import InvalidTimezoneError as InvalidTimezoneError
from ._errors import JobCancelledError as JobCancelledError
from ._errors import JobNotFoundError as JobNotFoundError
from ._errors import MainLoopUnavailableError as MainLoopUnavailableError
from ._errors import QuivError as QuivError
from ._errors import SchedulerStoppedError as SchedulerStoppedError
from ._errors import StoreError as StoreError
from ._errors import TaskNotActiveError as TaskNotActiveError
from ._errors import TaskNotFoundError as TaskNotFoundError
from ._errors import TaskRunningError as TaskRunningError
from ._events import Event as Event
from ._faces.async_face import AsyncQuiv as AsyncQuiv
from ._faces.sync_face import Quiv as Quiv
from ._logging import JobLogFilter as JobLogFilter
from ._logging import install_job_log_filter as install_job_log_filter
from ._mainloop.calls import call_on_main as call_on_main
from ._mainloop.calls import call_on_main_async as call_on_main_async
from ._mainloop.calls import run_on_main as run_on_main
from ._models import CancelReason as CancelReason
from ._models import Job as Job
from ._models import JobStatus as JobStatus
from ._models import QuivConfig as QuivConfig
from ._models import QuivStats as QuivStats
from ._models import ResultState as ResultState
from ._models import Task as Task
from ._models import TaskStatus as TaskStatus
from ._subprocess import run_subprocess as run_subprocess
from ._version import __version__ as __version__
from .abc import Clock as Clock

__all__ = (
    "AsyncQuiv",
    "CancelReason",
    "Clock",
    "ConfigurationError",
    "Event",
    "HandlerRegistrationError",
    "InvalidTimezoneError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobLogFilter",
    "JobNotFoundError",
    "JobStatus",
    "MainLoopUnavailableError",
    "Quiv",
    "QuivConfig",
    "QuivError",
    "QuivStats",
    "ResultState",
    "SchedulerStoppedError",
    "StoreError",
    "Task",
    "TaskNotActiveError",
    "TaskNotFoundError",
    "TaskRunningError",
    "TaskStatus",
    "call_on_main",
    "call_on_main_async",
    "current_job",
    "install_job_log_filter",
    "resolve_timezone",
    "run_on_main",
    "run_subprocess",
)

# Show public names as ``quiv.X`` in reprs, tracebacks and the docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("quiv."):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj


def __getattr__(name: str) -> object:
    """Names that moved keep working, with a :class:`DeprecationWarning`."""
    if name == "FakeClock":
        import warnings

        from .testing import FakeClock

        warnings.warn(
            "quiv.FakeClock moved to quiv.testing.FakeClock; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return FakeClock
    raise AttributeError(f"module 'quiv' has no attribute {name!r}")
