"""The lifecycle every long-lived part of quiv moves through, forward only.

:class:`~quiv.AsyncQuiv`, the sync face's runtime and the history stores each
keep one :class:`Lifecycle` value (each may skip states: a scheduler shut
down before it started goes from ``NEW`` straight to ``STOPPED``).
"""

from __future__ import annotations

import enum

__all__ = ("NEW", "RUNNING", "STARTING", "STOPPED", "STOPPING", "Lifecycle")


class Lifecycle(enum.Enum):
    """new → starting → running → stopping → stopped; ``str()`` gives the lower-case name."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


# The members as module constants, for the hot paths: before Python 3.12,
# ``Lifecycle.RUNNING`` is a slow class-attribute look-up (about 0.2 µs; a
# module global costs about 0.01 µs).
NEW = Lifecycle.NEW
STARTING = Lifecycle.STARTING
RUNNING = Lifecycle.RUNNING
STOPPING = Lifecycle.STOPPING
STOPPED = Lifecycle.STOPPED
