"""The exceptions quiv raises.

Every error the public API raises for bad input or bad state is a
:class:`QuivError`::

    QuivError
    ├── ConfigurationError          bad parameter value or combination (also ValueError)
    │   └── InvalidTimezoneError    unknown time zone name
    ├── HandlerRegistrationError    ``func`` or a callback is not usable (also TypeError)
    ├── TaskNotFoundError           unknown (or removed / finished run-once) task id (also LookupError)
    ├── TaskNotActiveError          the task is paused
    │   └── TaskRunningError        the task has a job in flight
    ├── JobNotFoundError            unknown (or pruned) job id (also LookupError)
    ├── JobCancelledError           raised inside a job that was cancelled
    ├── SchedulerStoppedError       the scheduler was shut down (also RuntimeError)
    ├── MainLoopUnavailableError    no scheduler / main loop to dispatch to (also RuntimeError)
    └── StoreError                  the job store failed to answer (also OSError)
"""

from __future__ import annotations

import builtins
import importlib

__all__ = (
    "ConfigurationError",
    "HandlerRegistrationError",
    "InvalidTimezoneError",
    "JobCancelledError",
    "JobNotFoundError",
    "MainLoopUnavailableError",
    "QuivError",
    "SchedulerStoppedError",
    "StoreError",
    "TaskNotActiveError",
    "TaskNotFoundError",
    "TaskRunningError",
)


class QuivError(Exception):
    """Base class of every error quiv raises on purpose."""


class ConfigurationError(QuivError, ValueError):
    """A parameter has a wrong type, a wrong value, or conflicts with another one."""

    @classmethod
    def bad_value(cls, name: str, value: object, expected: str) -> ConfigurationError:
        """Build the standard message: ``<name> must be <expected>, got <value!r>``."""
        return cls(f"{name} must be {expected}, got {value!r}")


class InvalidTimezoneError(ConfigurationError):
    """The ``timezone`` parameter names no known time zone."""


class HandlerRegistrationError(QuivError, TypeError):
    """A handler or callback is not callable, or declares conflicting parameters."""


class TaskNotFoundError(QuivError, LookupError):
    """No task has this id (it was never added, was removed, or was a finished run-once task)."""

    def __init__(self, task_id: object, param: str = "task_id") -> None:
        super().__init__(f"no task with {param}={task_id!r}")
        self.task_id = task_id


class TaskNotActiveError(QuivError):
    """The operation needs an active task, but the task is paused."""


class TaskRunningError(TaskNotActiveError):
    """The operation is refused because the task has a job in flight."""


class JobNotFoundError(QuivError, LookupError):
    """No job has this id (it was never created, or its record was pruned)."""

    def __init__(self, job_id: object) -> None:
        super().__init__(f"no job with job_id={job_id!r}")
        self.job_id = job_id


class JobCancelledError(QuivError):
    """Raised inside a job whose cancellation was requested.

    Raised by :func:`~quiv.call_on_main`, :func:`~quiv.run_subprocess` and
    :meth:`~quiv.JobContext.raise_if_cancelled`. Letting it propagate out of the
    handler ends the job as ``cancelled``.
    """


class SchedulerStoppedError(QuivError, RuntimeError):
    """The scheduler is not running (never started, or already shut down)."""


class MainLoopUnavailableError(QuivError, RuntimeError):
    """No running scheduler, or no main event loop, can be reached from here."""


class StoreError(QuivError, OSError):
    """The job store could not answer (disk full, database locked or corrupt, ...).

    The scheduler keeps dispatching and keeps the unwritten records in memory;
    it retries writing them in the background.
    """


#: BaseExceptionGroup: a builtin since Python 3.11, the backport's before
_GROUP: type[BaseException] = (
    getattr(builtins, "BaseExceptionGroup", None)
    or importlib.import_module("exceptiongroup").BaseExceptionGroup
)


def sole_error(error: BaseException) -> BaseException:
    """The one error inside (nested) single-error exception groups, else *error*.

    A task group wraps a failure in an exception group; a failed start should
    raise the error itself.
    """
    while isinstance(error, _GROUP):
        inner: tuple[BaseException, ...] = getattr(error, "exceptions", ())
        if len(inner) != 1:
            break
        error = inner[0]
    return error
