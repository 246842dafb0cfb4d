"""Schedule keys: the stable name that makes every process's declaration one schedule."""

from __future__ import annotations

import uuid
from typing import Final

from .._errors import ConfigurationError

__all__ = ("MAX_KEY_CHARS", "key_task_id")

#: the longest key accepted
MAX_KEY_CHARS: Final = 200
_NAMESPACE: Final = uuid.UUID("6f1c2a4e-3b7d-5e9f-8a10-2c4d6e8f0a1b")


def key_task_id(key: object, name: str, recurring: bool, host_mode: bool) -> str | None:
    """The task id of the schedule named *key*: the same in every process and at every start.

    A version 5 UUID of the key, so it looks like any other task id, and a
    schedule declared again (by another worker, or after a restart) keeps
    its id. ``None`` for no key (the task gets a random id).

    :param name: the task's name, for messages
    :param recurring: the task has a schedule (not run-once)
    :param host_mode: the scheduler is in host mode, where a recurring task needs a key
    :raises ConfigurationError: if *key* is not a non-empty string of at most
        :data:`MAX_KEY_CHARS` characters, names a run-once task, or is
        missing for a recurring task in host mode
    """
    if key is None:
        if host_mode and recurring:
            raise ConfigurationError(
                f"in host mode a recurring task needs key= (task {name!r}): every process"
                " declares it, and the key makes those declarations one schedule"
            )
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        raise ConfigurationError.bad_value(
            "key", key, f"a non-empty string of at most {MAX_KEY_CHARS} characters"
        )
    if not recurring:
        raise ConfigurationError(
            f"key= names a recurring schedule; a run-once task has none (got key={key!r})"
        )
    return str(uuid.uuid5(_NAMESPACE, key))
