"""Quiv and AsyncQuiv keep the same public methods, with the same parameters.

Only the colour differs: a method that is a coroutine on ``AsyncQuiv`` is a
plain blocking call on ``Quiv``; the plain ones stay plain. ``Quiv`` adds
``await_job``/``await_task``, coroutines with the parameters of
``wait_for_job``/``wait_for_task``.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from quiv import AsyncQuiv, Quiv

#: lifecycle differs on purpose: ``async with`` versus start()/shutdown()
LIFECYCLE = {
    "__aenter__",
    "__aexit__",
    "__enter__",
    "__exit__",
    "shutdown",
    "start",
    "startup",
    "stop",
}
#: the sync face's coroutine twins of the waits
AWAITERS = {"await_job": "wait_for_job", "await_task": "wait_for_task"}
#: constructor arguments of the sync face alone (the loop of its thread)
SYNC_ONLY_ARGUMENTS = {"backend", "backend_options"}


def public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.isfunction(member) and name not in LIFECYCLE
    }


def public_properties(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and isinstance(member, property)
    }


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """Parameter names, kinds and defaults (annotations are compared separately)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


ASYNC_METHODS = public_methods(AsyncQuiv)
SYNC_METHODS = public_methods(Quiv)


def test_the_same_methods_exist_on_both_faces() -> None:
    assert set(SYNC_METHODS) - set(AWAITERS) == set(ASYNC_METHODS)


@pytest.mark.parametrize("name", sorted(ASYNC_METHODS))
def test_parameters_are_identical(name: str) -> None:
    assert shape(SYNC_METHODS[name]) == shape(ASYNC_METHODS[name])


@pytest.mark.parametrize("name", sorted(ASYNC_METHODS))
def test_annotations_are_identical(name: str) -> None:
    sync = inspect.signature(SYNC_METHODS[name])
    asynchronous = inspect.signature(ASYNC_METHODS[name])
    assert sync.return_annotation == asynchronous.return_annotation
    assert [p.annotation for p in sync.parameters.values()] == [
        p.annotation for p in asynchronous.parameters.values()
    ]


@pytest.mark.parametrize("name", sorted(ASYNC_METHODS))
def test_coroutines_become_blocking_calls(name: str) -> None:
    assert not inspect.iscoroutinefunction(SYNC_METHODS[name])


def test_plain_async_face_methods_never_block() -> None:
    plain = {name for name, f in ASYNC_METHODS.items() if not inspect.iscoroutinefunction(f)}
    # cancel_job, add/remove_listener and pending_main_loop_work are plain on both
    assert {"cancel_job", "add_listener", "remove_listener", "pending_main_loop_work"} <= plain


@pytest.mark.parametrize(("awaiter", "waiter"), sorted(AWAITERS.items()))
def test_awaiters_are_coroutines_shaped_like_the_waits(awaiter: str, waiter: str) -> None:
    assert inspect.iscoroutinefunction(SYNC_METHODS[awaiter])
    assert inspect.iscoroutinefunction(ASYNC_METHODS[waiter])
    assert shape(SYNC_METHODS[awaiter]) == shape(ASYNC_METHODS[waiter])


def test_lifecycle_methods() -> None:
    assert inspect.iscoroutinefunction(AsyncQuiv.shutdown)
    for name in ("start", "startup", "shutdown", "stop"):
        assert not inspect.iscoroutinefunction(getattr(Quiv, name))
    assert shape(Quiv.shutdown) == shape(AsyncQuiv.shutdown)
    assert Quiv.startup is Quiv.start
    assert Quiv.stop is Quiv.shutdown


def test_properties_of_the_async_face_exist_on_the_sync_face() -> None:
    assert public_properties(AsyncQuiv) <= public_properties(Quiv)


def test_constructors_take_the_same_arguments() -> None:
    sync = shape(Quiv.__init__)
    asynchronous = shape(AsyncQuiv.__init__)
    assert [p for p in sync if p[0] not in SYNC_ONLY_ARGUMENTS] == asynchronous
    extra = {p[0]: p[1] for p in sync if p[0] in SYNC_ONLY_ARGUMENTS}
    assert extra == dict.fromkeys(SYNC_ONLY_ARGUMENTS, inspect.Parameter.KEYWORD_ONLY)
