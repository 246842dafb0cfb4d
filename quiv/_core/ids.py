"""Ids of tasks and jobs: random UUIDs, drawn cheaply, and fresh after a fork."""

from __future__ import annotations

import os
import threading

__all__ = ("fork_generation", "new_id")

_random_pool = bytearray()
_random_lock = threading.Lock()


def _reset_after_fork() -> None:
    """In a forked child: draw fresh randomness, never the parent's pooled bytes.

    A pre-fork server (gunicorn ``--preload``, ``uvicorn --workers``) would
    otherwise hand every worker the same job ids. The lock is replaced too: a
    thread of the parent may have held it at the fork, and it would stay held.
    """
    global _random_lock, _forks
    _random_lock = threading.Lock()
    _random_pool.clear()
    _forks += 1


#: how many forks separate this process from the one that imported quiv
_forks = 0


def fork_generation() -> int:
    """A number that changes in a forked child (ids drawn before are the parent's too)."""
    return _forks


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_id() -> str:
    """A random (version 4) UUID string.

    Draws randomness from :func:`os.urandom` in blocks, as one system call per
    id is a measurable cost at thousands of jobs a second.
    """
    with _random_lock:
        if not _random_pool:
            _random_pool.extend(os.urandom(16 * 256))
        raw = _random_pool[-16:]
        del _random_pool[-16:]
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
