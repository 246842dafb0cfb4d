"""The child's pipes: feed stdin, read and drain output, decode it as :mod:`subprocess` does.

The pidfd path (:mod:`._wait`) does its own pipe I/O in one ``poll()`` loop;
these helpers are its pieces. :func:`start_input` and :func:`joined` also
serve the fallback path, whose pipes have a thread each (:mod:`._pipe_threads`).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import selectors
import subprocess
from typing import IO, Any, TypeAlias

__all__ = (
    "DRAIN_LIMIT",
    "PIPE_BUF",
    "READ_SIZE",
    "Input",
    "close",
    "drain",
    "joined",
    "start_input",
)

#: What ``input`` may be: ``str`` in text mode, bytes-like otherwise.
Input: TypeAlias = "str | bytes | bytearray | memoryview"
#: Bytes read from a pipe at a time (as :mod:`subprocess` does).
READ_SIZE = 32768
#: Bytes written to stdin at a time: a write this small never blocks once poll() says ready.
PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
#: After a stop, read at most this much output that is already waiting in the pipes.
DRAIN_LIMIT = 1 << 20


def start_input(proc: subprocess.Popen[Any], input: Input | None) -> memoryview | None:
    """Prepare stdin as :meth:`~subprocess.Popen.communicate` does.

    Return the bytes to send, or ``None`` after closing stdin if there are none.
    """
    if proc.stdin is None:
        return None
    if not input:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        return None
    if isinstance(input, str):
        assert isinstance(proc.stdin, io.TextIOWrapper)
        return memoryview(input.encode(proc.stdin.encoding, proc.stdin.errors or "strict"))
    return memoryview(input).cast("B")


def close(selector: selectors.BaseSelector, pipes: set[int], stream: Any) -> None:
    """Stop watching *stream*, forget it among the open *pipes* and close it."""
    pipes.discard(stream.fileno())
    selector.unregister(stream)
    with contextlib.suppress(BrokenPipeError):
        stream.close()


def drain(
    selector: selectors.BaseSelector, chunks: dict[int, list[bytes]], pipes: set[int]
) -> None:
    """Read the output already waiting in the pipes, without waiting for more."""
    budget = DRAIN_LIMIT
    while budget > 0:
        ready = [key for key, _ in selector.select(0) if key.fd in chunks]
        if not ready:
            return
        for key in ready:
            data = os.read(key.fd, READ_SIZE)
            if data:
                chunks[key.fd].append(data)
                budget -= len(data)
            else:
                close(selector, pipes, key.fileobj)


def joined(stream: IO[Any] | None, chunks: list[bytes] | None, *, decode: bool) -> Any:
    """The output read from *stream*: decoded in text mode if *decode*, else bytes."""
    if stream is None or chunks is None:
        return None
    data = b"".join(chunks)
    if decode and isinstance(stream, io.TextIOWrapper):
        # as communicate() does in text mode: universal newlines
        text = data.decode(stream.encoding, stream.errors or "strict")
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return data
