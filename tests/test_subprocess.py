"""run_subprocess: a subprocess.run look-alike that a job cancel or timeout stops.

Children are small Python programs (portable, no shell needed). A child that
must be running before the test acts writes its pid to a "ready" pipe the test
owns; the test blocks on that pipe (bounded), never on a sleep.
"""

from __future__ import annotations

import contextvars
import math
import os
import select
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from quiv import ConfigurationError, JobCancelledError
from quiv._context import JobContext, JobControl, control_of, set_current
from quiv._subprocess import _pipes, _run, _stopper, _wait, run_subprocess

POSIX = sys.platform != "win32"
WAIT = 10.0  # upper bound for every wait in this file

posix_only = pytest.mark.skipif(not POSIX, reason="POSIX signals")


def _has_pidfd() -> bool:
    try:
        fd = os.pidfd_open(os.getpid())  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return False
    os.close(fd)
    return True


HAS_PIDFD = _has_pidfd()


@pytest.fixture(params=["pidfd", "polling"])
def waiting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the event-driven Linux path and with the portable fallback."""
    if request.param == "pidfd":
        if not HAS_PIDFD:
            pytest.skip("no pidfd on this platform")
    else:
        monkeypatch.setattr(_wait, "open_pidfd", lambda pid: -1)
    return str(request.param)


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


# A child that reports its pid on the ready pipe (fd in argv[1]), then waits.
SLEEPER = "import os, sys, time; os.write(int(sys.argv[1]), b'%d ' % os.getpid()); time.sleep(60)"
# The same, ignoring SIGTERM (installed before it reports ready).
STUBBORN = (
    "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "os.write(int(sys.argv[1]), b'%d ' % os.getpid()); time.sleep(60)"
)
# A child that reports "term" on the ready pipe when it receives SIGTERM and
# then exits with status 3 (STUBBORN_TERM: keeps running instead).
TERM_REPORTER = (
    "import os, signal, sys, time\n"
    "fd = int(sys.argv[1])\n"
    "def on_term(*_):\n"
    "    os.write(fd, b'term ')\n"
    "    if sys.argv[2] == 'exit':\n"
    "        os._exit(3)\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "os.write(fd, b'%d ' % os.getpid())\n"
    "while True:\n"
    "    signal.pause()  # until a signal: the test ends it\n"
)
# A child that starts a grandchild (which inherits its stdout/stderr), reports
# both pids, then waits.
PARENT = (
    "import os, subprocess, sys, time; "
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "os.write(int(sys.argv[1]), b'%d %d ' % (os.getpid(), g.pid)); time.sleep(60)"
)


class ReadyPipe:
    """A pipe whose write end is passed to a child, which writes its pid(s) on it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def popen_kwargs(self) -> dict[str, Any]:
        return {"pass_fds": (self.w,)}

    def args(self, code: str, *more: str) -> list[str]:
        return python(code, str(self.w), *more)

    def wait(self) -> list[int]:
        """Block (bounded) until the child reported; return the pids it wrote."""
        data = b""
        while not data.endswith(b" "):
            readable, _, _ = select.select([self.r], [], [], WAIT)
            assert readable, "the child never reported ready"
            chunk = os.read(self.r, 100)
            assert chunk, "the child exited before reporting ready"
            data += chunk
        return [int(pid) for pid in data.split()]

    def wait_for(self, word: bytes) -> None:
        """Block (bounded) until the child wrote *word* (followed by a space)."""
        data = b""
        while not data.endswith(word + b" "):
            readable, _, _ = select.select([self.r], [], [], WAIT)
            assert readable, f"the child never reported {word!r}"
            data += os.read(self.r, 100)

    def pending(self) -> bytes:
        """What the child wrote and nobody read yet (without waiting)."""
        data = b""
        while select.select([self.r], [], [], 0)[0]:
            data += os.read(self.r, 100)
        return data

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def ready() -> Iterator[ReadyPipe]:
    pipe = ReadyPipe()
    yield pipe
    pipe.close()


def make_job() -> JobContext:
    return JobContext(
        job_id="job-1",
        task_id="task-1",
        task_name="convert",
        attempt=1,
        control=JobControl(None),
        progress_callback=None,
    )


@dataclass
class Outcome:
    result: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def in_thread(func: Callable[[], Any], job: JobContext | None = None) -> Outcome:
    """Run *func* in a new thread (inside *job*'s context, if given)."""
    outcome = Outcome()

    def target() -> None:
        if job is not None:
            set_current(job)
        try:
            outcome.result = func()
        except BaseException as exc:
            outcome.error = exc
        finally:
            outcome.done.set()

    threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True).start()
    return outcome


def finished(outcome: Outcome) -> Outcome:
    assert outcome.done.wait(WAIT), "run_subprocess did not return"
    return outcome


def gone(pid: int) -> bool:
    """Whether *pid* has exited (waits up to WAIT for it where there is a pidfd).

    Without a pidfd it only looks once: that is enough for a direct child,
    which run_subprocess has reaped before returning; the tests that wait for
    a grandchild need a pidfd.
    """
    if HAS_PIDFD:
        try:
            fd = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
        except ProcessLookupError:
            return True
        try:
            readable, _, _ = select.select([fd], [], [], WAIT)
            return bool(readable)
        finally:
            os.close(fd)
    return not alive(pid)  # pragma: no cover - no pidfd here


def alive(pid: int) -> bool:
    """Whether *pid* is still running (a zombie counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pipe_threads_end() -> bool:
    """Whether every pipe thread of the fallback path ends (waits up to WAIT)."""
    for thread in threading.enumerate():
        if thread.name.startswith("quiv-subprocess-"):
            thread.join(WAIT)
            if thread.is_alive():
                return False
    return True


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- like subprocess.run ----------------------------------------------------------


def test_returns_completed_process_with_output(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; print('out'); print('err', file=sys.stderr)"),
        capture_output=True,
        text=True,
    )
    assert isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == 0
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.args[0] == sys.executable


def test_bytes_output_and_merged_stderr(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; sys.stdout.write('a'); sys.stdout.flush(); sys.stderr.write('b')"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert result.stdout == b"ab"
    assert result.stderr is None


def test_text_mode_translates_newlines(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc\\n')"),
        capture_output=True,
        text=True,
    )
    assert result.stdout == "a\nb\nc\n"


def test_output_not_captured_is_none(waiting: str) -> None:
    result = run_subprocess(python("pass"), stdout=subprocess.DEVNULL)
    assert result.returncode == 0
    assert result.stdout is None
    assert result.stderr is None


def test_large_output_does_not_deadlock(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; sys.stdout.write('x' * 3_000_000); sys.stderr.write('y' * 300_000)"),
        capture_output=True,
    )
    assert result.stdout == b"x" * 3_000_000
    assert result.stderr == b"y" * 300_000


def test_nonzero_exit_without_check_is_returned(waiting: str) -> None:
    result = run_subprocess(python("raise SystemExit(3)"))
    assert result.returncode == 3


def test_check_raises_called_process_error(waiting: str) -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_subprocess(
            python("print('before'); raise SystemExit(5)"),
            check=True,
            capture_output=True,
            text=True,
        )
    assert info.value.returncode == 5
    assert info.value.stdout == "before\n"


def test_check_passes_on_success() -> None:
    assert run_subprocess(python("pass"), check=True).returncode == 0


def test_missing_program_raises_like_popen() -> None:
    with pytest.raises(FileNotFoundError):
        run_subprocess(["/nonexistent/quiv-test-program"])


# -- input ------------------------------------------------------------------------


def test_input_bytes(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])"),
        input=b"abc",
        capture_output=True,
    )
    assert result.stdout == b"cba"


def test_input_text(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; print(sys.stdin.read().upper(), end='')"),
        input="héllo\n",
        capture_output=True,
        encoding="utf-8",
    )
    assert result.stdout == "HÉLLO\n"


def test_large_input_and_output_together(waiting: str) -> None:
    data = os.urandom(2_000_000)
    result = run_subprocess(
        python("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"),
        input=data,
        capture_output=True,
    )
    assert result.stdout == data


def test_input_is_all_written_even_when_the_first_wait_ends_early(
    waiting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every wait slice ends at once, so the first one always ends before the
    # child has read its input (more than a pipe buffer) and echoed it back.
    # The fallback path used to stop writing stdin after its first
    # communicate() slice timed out, and the child then waited forever.
    monkeypatch.setattr(_stopper, "POLL_INTERVAL", 0.0)
    data = os.urandom(1_000_000)
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            python("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"),
            input=data,
            capture_output=True,
        ),
        job,
    )
    try:
        assert outcome.done.wait(WAIT), "run_subprocess hung: the input was not all written"
    finally:
        control_of(job).cancel("the test is over")  # stops a hung child, if any
        finished(outcome)
    assert outcome.error is None
    assert outcome.result.stdout == data


def test_input_the_child_does_not_read(waiting: str) -> None:
    # The child exits without reading: the broken pipe is not an error.
    result = run_subprocess(python("pass"), input=b"x" * 1_000_000)
    assert result.returncode == 0


def test_empty_input_closes_stdin(waiting: str) -> None:
    result = run_subprocess(
        python("import sys; print(len(sys.stdin.read()))"), input=b"", capture_output=True
    )
    assert result.stdout.strip() == b"0"


# -- timeout ----------------------------------------------------------------------


def test_timeout_raises_timeout_expired_with_output(waiting: str, ready: ReadyPipe) -> None:
    code = (
        "import os, signal, sys; print('partial', flush=True); "
        "os.write(int(sys.argv[1]), b'%d ' % os.getpid()); signal.pause()"
    )
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(code),
            timeout=1.0,
            capture_output=True,
            text=True,  # the output of TimeoutExpired is bytes anyway, as in subprocess
            **ready.popen_kwargs(),
        )
    )
    (pid,) = ready.wait()
    error = finished(outcome).error
    assert isinstance(error, subprocess.TimeoutExpired)
    assert error.timeout == 1.0
    assert error.output == b"partial\n"
    assert error.stderr == b""
    assert gone(pid)


@posix_only
def test_output_written_while_stopping_is_kept(waiting: str) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('z' * 1_000_000 + 'bye', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('partial', flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_subprocess(python(code), timeout=1.0, capture_output=True)
    assert info.value.output == b"partial\n" + b"z" * 1_000_000 + b"bye\n"


def test_timeout_zero_stops_at_once(waiting: str, ready: ReadyPipe) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_subprocess(ready.args(SLEEPER), timeout=0, **ready.popen_kwargs())


def test_timeout_not_reached(waiting: str) -> None:
    assert run_subprocess(python("pass"), timeout=30).returncode == 0


@posix_only
def test_timeout_respects_kill_grace(waiting: str, ready: ReadyPipe) -> None:
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(STUBBORN), timeout=0.2, kill_grace=0.3, **ready.popen_kwargs()
        )
    )
    (pid,) = ready.wait()
    finished(outcome)
    assert isinstance(outcome.error, subprocess.TimeoutExpired)
    assert gone(pid)


# -- cancellation -----------------------------------------------------------------


@posix_only
def test_cancel_terminates_the_child_and_raises(waiting: str, ready: ReadyPipe) -> None:
    # A grace far beyond WAIT: run_subprocess returns once the child has
    # exited on SIGTERM, not once the grace is over.
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(TERM_REPORTER, "exit"),
            kill_grace=3600,
            capture_output=True,
            **ready.popen_kwargs(),
        ),
        job,
    )
    (pid,) = ready.wait()
    control_of(job).cancel("cancelled by test")
    ready.wait_for(b"term")
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert str(outcome.error) == "cancelled by test"
    assert gone(pid)
    assert control_of(job).callbacks == []


@pytest.mark.skipif(not HAS_PIDFD, reason="the event-driven path needs pidfd")
def test_cancel_wakes_the_waiting_thread_without_polling(
    ready: ReadyPipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With polling effectively disabled, only the cancel callback can wake the job thread.
    monkeypatch.setattr(_stopper, "POLL_INTERVAL", 3600.0)
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(SLEEPER), stop_event=job.stop_event, **ready.popen_kwargs()
        ),
        job,
    )
    ready.wait()
    control_of(job).cancel("stop now")
    finished(outcome)  # far sooner than a poll would have noticed the cancel
    assert isinstance(outcome.error, JobCancelledError)
    assert str(outcome.error) == "stop now"


def test_cancel_while_input_is_still_pending(waiting: str, ready: ReadyPipe) -> None:
    # The child never reads stdin: the writer is blocked on a full pipe when the job is cancelled.
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(SLEEPER),
            input=b"x" * 10_000_000,
            capture_output=True,
            **ready.popen_kwargs(),
        ),
        job,
    )
    (pid,) = ready.wait()
    control_of(job).cancel("cancelled by test")
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert gone(pid)
    assert pipe_threads_end()


def test_falls_back_when_pidfd_open_fails(
    monkeypatch: pytest.MonkeyPatch, ready: ReadyPipe
) -> None:
    def refuse(pid: int) -> int:
        raise PermissionError("pidfd_open blocked by a sandbox")

    monkeypatch.setattr(os, "pidfd_open", refuse, raising=False)
    result = run_subprocess(python("print('fine')"), capture_output=True, text=True)
    assert result.stdout == "fine\n"
    job = make_job()
    outcome = in_thread(lambda: run_subprocess(ready.args(SLEEPER), **ready.popen_kwargs()), job)
    ready.wait()
    control_of(job).cancel("cancelled by test")
    assert isinstance(finished(outcome).error, JobCancelledError)


def test_already_cancelled_job_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_popen(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    job = make_job()
    control_of(job).cancel("removed")
    outcome = finished(in_thread(lambda: run_subprocess(["anything"]), job))
    assert isinstance(outcome.error, JobCancelledError)
    assert str(outcome.error) == "removed"


def test_cancel_after_completion_is_harmless(waiting: str) -> None:
    job = make_job()
    outcome = finished(in_thread(lambda: run_subprocess(python("print(1)")), job))
    assert outcome.error is None
    assert outcome.result.returncode == 0
    assert control_of(job).callbacks == []
    assert control_of(job).cancel("late")


@posix_only
def test_sigterm_ignored_is_killed_after_grace(waiting: str, ready: ReadyPipe) -> None:
    # The child survives SIGTERM (it reports it and keeps running): SIGKILL ends it.
    # When SIGKILL falls due is tested with a clock in test_stopper_* below.
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(TERM_REPORTER, "stay"),
            kill_grace=0.5,
            capture_output=True,
            **ready.popen_kwargs(),
        ),
        job,
    )
    (pid,) = ready.wait()
    control_of(job).cancel("cancelled by test")
    ready.wait_for(b"term")
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert gone(pid)


class SignalRecorder:
    """Stands in for the Popen of a Stopper: records the signals instead of sending them."""

    pid = -1

    def __init__(self) -> None:
        self.signals: list[int] = []

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


def recording_stopper(job: JobContext, kill_grace: float) -> tuple[_stopper.Stopper, list[int]]:
    proc = SignalRecorder()
    stopper = _stopper.Stopper(cast(Any, proc), job, None, None, kill_grace, False)
    return stopper, proc.signals


@posix_only
def test_stopper_sends_sigkill_when_the_grace_is_over() -> None:
    job = make_job()
    stopper, signals = recording_stopper(job, kill_grace=0.5)
    stopper.check(100.0)
    assert signals == []
    control_of(job).cancel("stop")
    stopper.check(100.0)
    assert signals == [signal.SIGTERM]
    assert stopper.stop_kind == _stopper.CANCELLED
    assert stopper.wait_time(100.0, polling=False) == 0.5
    assert stopper.wait_time(100.2, polling=True) == _stopper.POLL_INTERVAL
    stopper.check(100.49)
    assert signals == [signal.SIGTERM]
    stopper.check(100.5)
    assert signals == [signal.SIGTERM, signal.SIGKILL]
    assert stopper.wait_time(100.5, polling=False) is None  # nothing more falls due
    stopper.check(200.0)
    assert signals == [signal.SIGTERM, signal.SIGKILL]


@posix_only
def test_stopper_with_no_grace_kills_at_once() -> None:
    job = make_job()
    stopper, signals = recording_stopper(job, kill_grace=0)
    control_of(job).cancel("stop")
    stopper.check(100.0)
    assert signals == [signal.SIGKILL]
    stopper.check(200.0)
    assert signals == [signal.SIGKILL]


@posix_only
def test_kill_grace_zero_kills_at_once(waiting: str, ready: ReadyPipe) -> None:
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(TERM_REPORTER, "stay"), kill_grace=0, **ready.popen_kwargs()
        ),
        job,
    )
    (pid,) = ready.wait()
    control_of(job).cancel("now")
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert gone(pid)
    assert ready.pending() == b""  # killed, never sent SIGTERM


def test_explicit_stop_event_outside_a_job(waiting: str, ready: ReadyPipe) -> None:
    stop = threading.Event()
    outcome = in_thread(
        lambda: run_subprocess(ready.args(SLEEPER), stop_event=stop, **ready.popen_kwargs())
    )
    (pid,) = ready.wait()
    stop.set()
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert str(outcome.error) == "stop_event was set"
    assert gone(pid)


def test_explicit_stop_event_inside_a_job_watches_both(waiting: str, ready: ReadyPipe) -> None:
    job = make_job()
    stop = threading.Event()
    outcome = in_thread(
        lambda: run_subprocess(ready.args(SLEEPER), stop_event=stop, **ready.popen_kwargs()),
        job,
    )
    ready.wait()
    control_of(job).cancel("the job went first")
    finished(outcome)
    assert isinstance(outcome.error, JobCancelledError)
    assert str(outcome.error) == "the job went first"


def test_explicit_stop_event_already_set_starts_nothing() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(JobCancelledError, match="stop_event was set"):
        run_subprocess(["/nonexistent/quiv-test-program"], stop_event=stop)


@posix_only
@pytest.mark.skipif(not HAS_PIDFD, reason="waits for the grandchild through a pidfd")
@pytest.mark.parametrize(
    "new_group",
    [
        {"start_new_session": True},
        pytest.param(
            {"process_group": 0},
            marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.11+"),
        ),
    ],
    ids=["start_new_session", "process_group"],
)
def test_new_group_signals_the_whole_group(
    waiting: str, ready: ReadyPipe, new_group: dict[str, Any]
) -> None:
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(
            ready.args(PARENT), capture_output=True, **new_group, **ready.popen_kwargs()
        ),
        job,
    )
    child, grandchild = ready.wait()
    try:
        control_of(job).cancel("cancelled by test")
        finished(outcome)
        assert isinstance(outcome.error, JobCancelledError)
        assert gone(child)
        assert gone(grandchild)
    finally:
        kill_quietly(grandchild)


@posix_only
def test_grandchild_holding_the_pipes_does_not_block_a_cancel(
    waiting: str, ready: ReadyPipe
) -> None:
    # Only the direct child is signalled; its child keeps stdout/stderr open.
    job = make_job()
    outcome = in_thread(
        lambda: run_subprocess(ready.args(PARENT), capture_output=True, **ready.popen_kwargs()),
        job,
    )
    child, grandchild = ready.wait()
    try:
        control_of(job).cancel("cancelled by test")
        finished(outcome)
        assert isinstance(outcome.error, JobCancelledError)
        assert gone(child)
        assert alive(grandchild)  # returned while the grandchild still holds the pipes
    finally:
        kill_quietly(grandchild)
    assert pipe_threads_end()  # the pipes' threads end with the grandchild


def test_unexpected_error_kills_the_child(
    ready: ReadyPipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(stopper: object, input: object) -> None:
        ready.wait()
        raise RuntimeError("boom")

    monkeypatch.setattr(_run, "wait_for_exit", boom)
    outcome = finished(  # the child would sleep 60 s: it was killed and reaped
        in_thread(lambda: run_subprocess(ready.args(SLEEPER), **ready.popen_kwargs()))
    )
    assert isinstance(outcome.error, RuntimeError)
    assert str(outcome.error) == "boom"


@posix_only
def test_drain_reads_what_is_waiting_without_waiting_for_more() -> None:
    # After a stop, what the child wrote before exiting is kept, but a pipe that
    # a grandchild holds open is not waited for.
    r_done, w_done = os.pipe()
    r_held, w_held = os.pipe()
    os.write(w_done, b"a" * 60_000)
    os.close(w_done)
    os.write(w_held, b"b" * 10)
    with (
        open(r_done, "rb", buffering=0) as done,
        open(r_held, "rb", buffering=0) as held,
        selectors.DefaultSelector() as selector,
    ):
        selector.register(done, selectors.EVENT_READ)
        selector.register(held, selectors.EVENT_READ)
        chunks: dict[int, list[bytes]] = {r_done: [], r_held: []}
        pipes = {r_done, r_held}
        _pipes.drain(selector, chunks, pipes)
        assert b"".join(chunks[r_done]) == b"a" * 60_000
        assert b"".join(chunks[r_held]) == b"b" * 10
        assert done.closed
        assert pipes == {r_held}
    os.close(w_held)


# -- validation -------------------------------------------------------------------

BAD_SECONDS = [True, "5", -1, -0.5, math.nan, math.inf, -math.inf, 10**400, [1]]


@pytest.mark.parametrize("value", BAD_SECONDS, ids=repr)
def test_bad_timeout(value: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout") as info:
        run_subprocess(["/nonexistent/quiv-test-program"], timeout=value)  # type: ignore[arg-type]
    assert repr(value)[:20] in str(info.value)


@pytest.mark.parametrize("value", [*BAD_SECONDS, None], ids=repr)
def test_bad_kill_grace(value: object) -> None:
    with pytest.raises(ConfigurationError, match="kill_grace") as info:
        run_subprocess(["/nonexistent/quiv-test-program"], kill_grace=value)  # type: ignore[arg-type]
    assert repr(value)[:20] in str(info.value)


def test_good_seconds_accept_ints_and_zero() -> None:
    result = run_subprocess(python("pass"), timeout=30, kill_grace=0)
    assert result.returncode == 0


@pytest.mark.parametrize("name", ["check", "capture_output"])
def test_flags_must_be_bool(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        kwargs: dict[str, Any] = {name: "yes"}
        run_subprocess(["/nonexistent/quiv-test-program"], **kwargs)


def test_stop_event_must_be_a_threading_event() -> None:
    with pytest.raises(ConfigurationError, match="stop_event"):
        run_subprocess(["/nonexistent/quiv-test-program"], stop_event=object())  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_capture_output_conflicts_with_stdout_and_stderr(stream: str) -> None:
    kwargs: dict[str, Any] = {stream: subprocess.DEVNULL}
    with pytest.raises(ConfigurationError, match="capture_output"):
        run_subprocess(["/nonexistent/quiv-test-program"], capture_output=True, **kwargs)


def test_input_conflicts_with_stdin() -> None:
    with pytest.raises(ConfigurationError, match="stdin"):
        run_subprocess(["/nonexistent/quiv-test-program"], input=b"x", stdin=subprocess.DEVNULL)


def test_input_type_must_match_the_mode() -> None:
    with pytest.raises(ConfigurationError, match="input must be bytes"):
        run_subprocess(["/nonexistent/quiv-test-program"], input="text")
    with pytest.raises(ConfigurationError, match="input must be a str"):
        run_subprocess(["/nonexistent/quiv-test-program"], input=b"bytes", text=True)


def test_configuration_error_is_a_value_error() -> None:
    # subprocess.run raises ValueError for the same conflicts.
    with pytest.raises(ValueError):
        run_subprocess(["x"], input=b"x", stdin=subprocess.DEVNULL)
