"""JobLogFilter / install_job_log_filter: the job's ids on every log record."""

from __future__ import annotations

import contextvars
import io
import logging
import logging.handlers
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from quiv import ConfigurationError, JobLogFilter, install_job_log_filter
from quiv._context import JobContext, JobControl, set_current

WAIT = 10.0


class Collect(logging.Handler):
    """A handler that keeps (job_id, task_id, task_name, message) of what it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, ...]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(
            (
                getattr(record, "job_id", None),
                getattr(record, "task_id", None),
                getattr(record, "task_name", None),
                record.getMessage(),
            )
        )


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate to the root (nor to pytest's capture)."""
    log = logging.getLogger("quiv.tests.logging")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for existing in list(log.filters):
        log.removeFilter(existing)


@pytest.fixture
def collect(logger: logging.Logger) -> Collect:
    handler = Collect()
    handler.addFilter(JobLogFilter())
    logger.addHandler(handler)
    return handler


def make_job(n: int = 1) -> JobContext:
    return JobContext(
        job_id=f"job-{n}",
        task_id=f"task-{n}",
        task_name=f"name-{n}",
        attempt=1,
        control=JobControl(None),
        progress_callback=None,
    )


def run_in_job(job: JobContext, func: Callable[[], object]) -> None:
    """Run *func* in a new thread, inside *job* (as the scheduler's worker would)."""
    errors: list[BaseException] = []

    def target() -> None:
        set_current(job)
        try:
            func()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,))
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not errors, errors


def test_outside_a_job_uses_the_placeholder(logger: logging.Logger, collect: Collect) -> None:
    logger.info("hello")
    assert collect.seen == [("-", "-", "-", "hello")]


def test_custom_placeholder(logger: logging.Logger) -> None:
    handler = Collect()
    handler.addFilter(JobLogFilter(placeholder=""))
    logger.addHandler(handler)
    logger.info("hello")
    assert handler.seen == [("", "", "", "hello")]


def test_inside_a_job_stamps_its_ids(logger: logging.Logger, collect: Collect) -> None:
    run_in_job(make_job(), lambda: logger.info("working"))
    assert collect.seen == [("job-1", "task-1", "name-1", "working")]


def test_concurrent_jobs_keep_their_own_ids(logger: logging.Logger, collect: Collect) -> None:
    barrier = threading.Barrier(2, timeout=WAIT)

    def work(n: int) -> Callable[[], None]:
        def log() -> None:
            barrier.wait()  # both jobs are running at once
            logger.info("from %d", n)

        return log

    threads = [threading.Thread(target=run_in_job, args=(make_job(n), work(n))) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(collect.seen) == [
        ("job-1", "task-1", "name-1", "from 1"),
        ("job-2", "task-2", "name-2", "from 2"),
    ]


def test_thread_started_with_the_job_context(logger: logging.Logger, collect: Collect) -> None:
    def start_helper_thread() -> None:
        helper = threading.Thread(
            target=contextvars.copy_context().run, args=(logger.info, "from a helper")
        )
        helper.start()
        helper.join(WAIT)

    run_in_job(make_job(), start_helper_thread)
    assert collect.seen == [("job-1", "task-1", "name-1", "from a helper")]


def test_plain_thread_does_not_inherit_the_job(logger: logging.Logger, collect: Collect) -> None:
    # threading.Thread starts with an empty context: documented, not a bug.
    def start_plain_thread() -> None:
        helper = threading.Thread(target=logger.info, args=("from a plain thread",))
        helper.start()
        helper.join(WAIT)

    run_in_job(make_job(), start_plain_thread)
    assert collect.seen == [("-", "-", "-", "from a plain thread")]


def test_format_string_and_child_loggers(logger: logging.Logger) -> None:
    # On a handler, the filter covers records of every logger that propagates to it.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(job_id)s %(task_name)s %(name)s: %(message)s"))
    handler.addFilter(JobLogFilter())
    logger.addHandler(handler)
    child = logger.getChild("deep.module")
    child.info("outside")
    run_in_job(make_job(), lambda: child.warning("inside"))
    assert stream.getvalue().splitlines() == [
        "- - quiv.tests.logging.deep.module: outside",
        "job-1 name-1 quiv.tests.logging.deep.module: inside",
    ]


def test_explicit_extra_wins(logger: logging.Logger, collect: Collect) -> None:
    run_in_job(make_job(), lambda: logger.info("mine", extra={"job_id": "explicit"}))
    assert collect.seen == [("explicit", "task-1", "name-1", "mine")]


def test_filter_on_a_logger_keeps_every_record(logger: logging.Logger) -> None:
    handler = Collect()
    logger.addHandler(handler)
    logger.addFilter(JobLogFilter())
    logger.debug("one")
    run_in_job(make_job(), lambda: logger.error("two"))
    assert handler.seen == [("-", "-", "-", "one"), ("job-1", "task-1", "name-1", "two")]


def test_queue_handler_carries_the_stamp_to_the_listener(logger: logging.Logger) -> None:
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    queue_handler = logging.handlers.QueueHandler(records)
    queue_handler.addFilter(JobLogFilter())
    logger.addHandler(queue_handler)
    target = Collect()
    target.addFilter(JobLogFilter())  # runs in the listener's thread: must not overwrite
    listener = logging.handlers.QueueListener(records, target)
    listener.start()
    try:
        run_in_job(make_job(), lambda: logger.info("queued"))
    finally:
        listener.stop()
    assert target.seen == [("job-1", "task-1", "name-1", "queued")]


async def test_async_code_and_to_thread(logger: logging.Logger, collect: Collect) -> None:
    # Inside an async handler's loop and in threads it starts with anyio.to_thread.
    async def handler() -> None:
        set_current(make_job())
        logger.info("in the loop")
        await anyio.to_thread.run_sync(logger.info, "in a worker thread")

    async with anyio.create_task_group() as tg:
        tg.start_soon(handler)  # a task runs in a copy of the context
    logger.info("after")
    assert collect.seen == [
        ("job-1", "task-1", "name-1", "in the loop"),
        ("job-1", "task-1", "name-1", "in a worker thread"),
        ("-", "-", "-", "after"),
    ]


def test_placeholder_must_be_a_str() -> None:
    with pytest.raises(ConfigurationError, match="placeholder"):
        JobLogFilter(placeholder=None)  # type: ignore[arg-type]


# -- install_job_log_filter -------------------------------------------------------


def test_install_on_a_handler(logger: logging.Logger) -> None:
    handler = Collect()
    logger.addHandler(handler)
    job_filter = install_job_log_filter(handler)
    assert isinstance(job_filter, JobLogFilter)
    assert handler.filters == [job_filter]
    run_in_job(make_job(), lambda: logger.info("x"))
    assert handler.seen == [("job-1", "task-1", "name-1", "x")]


def test_install_on_a_logger(logger: logging.Logger) -> None:
    job_filter = install_job_log_filter(logger, placeholder="?")
    assert logger.filters == [job_filter]
    assert job_filter.placeholder == "?"


def test_install_is_idempotent(logger: logging.Logger) -> None:
    handler = Collect()
    first = install_job_log_filter(handler)
    assert install_job_log_filter(handler) is first
    assert handler.filters == [first]


def test_install_on_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    old, new = Collect(), Collect()
    earlier = install_job_log_filter(old)
    monkeypatch.setattr(root, "handlers", [old, new])
    job_filter = install_job_log_filter()
    assert new.filters == [job_filter]
    assert old.filters == [earlier]  # not doubled
    assert install_job_log_filter() is earlier  # nothing left to add


def test_install_without_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with pytest.raises(ConfigurationError, match="basicConfig"):
        install_job_log_filter()


@pytest.mark.parametrize(
    "target", ["root", logging.LoggerAdapter(logging.getLogger("x"), {})], ids=repr
)
def test_install_rejects_other_targets(target: object) -> None:
    with pytest.raises(ConfigurationError, match="handler_or_logger"):
        install_job_log_filter(target)  # type: ignore[arg-type]


def test_install_validates_placeholder_before_adding(logger: logging.Logger) -> None:
    with pytest.raises(ConfigurationError, match="placeholder"):
        install_job_log_filter(logger, placeholder=1)  # type: ignore[arg-type]
    assert logger.filters == []
