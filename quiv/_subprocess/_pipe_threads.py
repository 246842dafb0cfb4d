"""The child's pipes on the fallback path: one daemon thread per pipe.

Where there is no pidfd (macOS, Windows, older Linux), the job thread cannot
sleep in one ``poll()`` over the pipes and the child: on Windows, pipes cannot
be polled at all. So each pipe gets its own thread, which blocks on it alone:
a :class:`Feeder` writes the whole input to stdin and closes it, a
:class:`Collector` reads stdout or stderr to the end. The job thread only
waits for the child and watches for stops, so a child that reads its input
slowly, or writes much output before it reads the rest, can never deadlock.

Each thread **owns** its stream: :func:`take` removes it from the
:class:`~subprocess.Popen`, so that neither :meth:`~subprocess.Popen.__exit__`
nor anyone else closes a descriptor that the thread may still be blocked on
(its number could be reused at once by another file). The thread closes it
when it is done. After a stop, a thread may outlive the call only while a
grandchild still holds its pipe open; it then ends when the grandchild does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from typing import IO, Any, Literal

from ._pipes import READ_SIZE

__all__ = ("WRITE_SIZE", "Collector", "Feeder", "take")

#: Bytes written to stdin by one ``os.write`` call.
WRITE_SIZE = 65536


def take(proc: subprocess.Popen[Any], name: Literal["stdin", "stdout", "stderr"]) -> IO[Any]:
    """Remove the stream *name* from *proc* and return it; the caller now owns it."""
    stream: IO[Any] | None = getattr(proc, name)
    assert stream is not None
    setattr(proc, name, None)
    return stream


def _close(stream: IO[Any]) -> None:
    with contextlib.suppress(OSError):
        stream.close()


def _start(target: Any, name: str, stream: IO[Any]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except BaseException:
        _close(stream)
        raise
    return thread


class Feeder:
    """Write all of *data* to the child's stdin from a thread, then close it.

    A child that exits (or closes its stdin) before reading everything is not
    an error, as with :meth:`~subprocess.Popen.communicate`.
    """

    __slots__ = ("_data", "_stream", "_thread", "error")

    def __init__(self, stream: IO[Any], data: memoryview) -> None:
        self._stream = stream
        self._data = data
        #: an unexpected error from writing, for the job thread to raise
        self.error: OSError | None = None
        self._thread = _start(self._run, "quiv-subprocess-stdin", stream)

    def _run(self) -> None:
        fd = self._stream.fileno()
        data = self._data
        offset = 0
        try:
            while offset < len(data):
                offset += os.write(fd, data[offset : offset + WRITE_SIZE])
        except BrokenPipeError:
            pass  # the child no longer reads its input
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # Windows: the child has exited
                self.error = exc
        finally:
            _close(self._stream)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class Collector:
    """Read the child's stdout or stderr to the end from a thread."""

    __slots__ = ("_abandoned", "_chunks", "_lock", "_thread", "error", "size", "stream")

    def __init__(self, stream: IO[Any], name: str) -> None:
        #: the stream, kept for decoding the output (its encoding and errors)
        self.stream = stream
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        #: bytes read so far
        self.size = 0
        #: an unexpected error from reading, for the job thread to raise
        self.error: OSError | None = None
        self._abandoned = False
        self._thread = _start(self._run, f"quiv-subprocess-{name}", stream)

    def _run(self) -> None:
        fd = self.stream.fileno()
        try:
            while not self._abandoned:
                data = os.read(fd, READ_SIZE)
                if not data:
                    break
                with self._lock:
                    if self._abandoned:
                        break
                    self._chunks.append(data)
                    self.size += len(data)
        except BrokenPipeError:
            pass  # Windows reports the end of some pipes this way
        except OSError as exc:
            self.error = exc
        finally:
            _close(self.stream)

    @property
    def done(self) -> bool:
        """Whether the pipe has been read to its end (or reading failed)."""
        return not self._thread.is_alive()

    def join(self, timeout: float | None) -> None:
        self._thread.join(timeout)

    def chunks(self) -> list[bytes]:
        """The output read so far."""
        with self._lock:
            return list(self._chunks)

    def abandon(self) -> None:
        """Keep nothing more; close the pipe as soon as the thread wakes up.

        For a pipe that a grandchild holds open after a stop: the thread may be
        blocked in ``read``, so the pipe cannot be closed from here.
        """
        with self._lock:
            self._abandoned = True
