"""Log correlation: the current job's ids on every log record.

:class:`JobLogFilter` reads the job context (:func:`~quiv.current_job`) when a
record passes through it and stores the job's ids on the record, so a format
string can use ``%(job_id)s`` without any code passing the id around.
"""

from __future__ import annotations

import logging

from ._context import current_job
from ._errors import ConfigurationError

__all__ = ("JobLogFilter", "install_job_log_filter")


class JobLogFilter(logging.Filter):
    """A logging filter that stamps the current job's ids on every record.

    Each record that passes through it gets three attributes:

    - ``job_id`` — the id of the job that emitted it (one per run),
    - ``task_id`` — the id of its task,
    - ``task_name`` — the task's name;

    or *placeholder* for each, when the record was emitted outside a job. It
    never drops a record. Attributes a record already has are kept (for
    example ones passed with ``extra=``, or stamped by an earlier filter).

    The job is found the way :func:`~quiv.current_job` finds it, so records
    are stamped at any call depth in sync and async handlers, and in threads
    started with the job's context (``contextvars.copy_context().run``). The
    cost is one context-variable lookup per record.

    Add it to a **handler** (recommended): a handler sees the records of every
    logger that propagates to it, whereas a filter on a logger sees only
    records logged on that very logger, not those of its children::

        handler = logging.StreamHandler()
        handler.addFilter(JobLogFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s [%(job_id)s] %(message)s"))

    The filter must run in the thread that emits the record. With a
    :class:`logging.handlers.QueueHandler`, add it to the ``QueueHandler``
    itself: the stamped attributes travel with the record to the listener.

    :param placeholder: the value of the three attributes outside a job
    :raises ~quiv.ConfigurationError: if *placeholder* is not a ``str``
    """

    def __init__(self, placeholder: str = "-") -> None:
        if not isinstance(placeholder, str):
            raise ConfigurationError.bad_value("placeholder", placeholder, "a str")
        super().__init__()
        #: the value of ``job_id``, ``task_id`` and ``task_name`` outside a job
        self.placeholder = placeholder

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp *record* with the current job's ids; always keep it.

        :param record: the record being logged
        :return: ``True``
        """
        job = current_job()
        attributes = record.__dict__
        if job is None:
            placeholder = self.placeholder
            attributes.setdefault("job_id", placeholder)
            attributes.setdefault("task_id", placeholder)
            attributes.setdefault("task_name", placeholder)
        else:
            attributes.setdefault("job_id", job.job_id)
            attributes.setdefault("task_id", job.task_id)
            attributes.setdefault("task_name", job.task_name)
        return True


def install_job_log_filter(
    handler_or_logger: logging.Handler | logging.Logger | None = None,
    *,
    placeholder: str = "-",
) -> JobLogFilter:
    """Add a :class:`JobLogFilter` where records need it, in one call.

    With no argument, the filter is added to **every handler of the root
    logger** — the common case after :func:`logging.basicConfig`::

        logging.basicConfig(format="%(asctime)s %(levelname)s [%(job_id)s] %(message)s")
        install_job_log_filter()

    Handlers added to the root logger later, and handlers of loggers that do
    not propagate to the root (``uvicorn``'s, for example), are not covered:
    pass them one by one, or add the returned filter to them with
    ``handler.addFilter(job_filter)``.

    Installing twice is harmless: a handler or logger that already has a
    :class:`JobLogFilter` keeps it and gets no second one.

    :param handler_or_logger: the handler (recommended) or logger to add the
        filter to; ``None`` for every handler of the root logger
    :param placeholder: the value of the attributes outside a job (used only
        when a new filter is created)
    :return: the filter that was added — or, if every target already had one,
        the filter found on the first target
    :raises ~quiv.ConfigurationError: if *handler_or_logger* is neither a handler
        nor a logger, or if it is ``None`` and the root logger has no handlers
        (configure logging first)
    """
    if handler_or_logger is None:
        targets: list[logging.Handler | logging.Logger] = list(logging.getLogger().handlers)
        if not targets:
            raise ConfigurationError(
                "the root logger has no handlers to add the job log filter to: "
                "configure logging first (for example with logging.basicConfig()), "
                "or pass a handler"
            )
    elif isinstance(handler_or_logger, (logging.Handler, logging.Logger)):
        targets = [handler_or_logger]
    else:
        raise ConfigurationError.bad_value(
            "handler_or_logger", handler_or_logger, "a logging.Handler, a logging.Logger or None"
        )
    new_filter = JobLogFilter(placeholder)
    found: JobLogFilter | None = None
    added = False
    for target in targets:
        existing = next((f for f in target.filters if isinstance(f, JobLogFilter)), None)
        if existing is None:
            target.addFilter(new_filter)
            added = True
        elif found is None:
            found = existing
    if added or found is None:
        return new_filter
    return found
