"""The public surface of the ``quiv`` package is exactly what ``quiv.__all__`` says."""

from __future__ import annotations

import inspect
import types

import pytest

import quiv


def _public_attributes() -> set[str]:
    """Names a user can see on ``quiv``: no underscore, no submodule, no ``__future__`` flag."""
    return {
        name
        for name, value in vars(quiv).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        # `from __future__ import annotations` leaves a public `annotations` flag behind
        and type(value).__module__ != "__future__"
    }


def _declared() -> tuple[str, ...]:
    # A package that exports nothing needs no ``__all__``; one that exports
    # anything must declare it (checked in test_all_matches_public_attributes).
    exported: tuple[str, ...] = getattr(quiv, "__all__", ())
    return exported


def test_version_is_a_string() -> None:
    assert isinstance(quiv.__version__, str)
    assert quiv.__version__


def test_all_is_a_tuple_of_unique_strings() -> None:
    exported = _declared()
    assert isinstance(exported, tuple), "quiv.__all__ must be a tuple"
    assert all(isinstance(name, str) for name in exported)
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"names listed twice in quiv.__all__: {duplicates}"


def test_all_matches_public_attributes() -> None:
    public = _public_attributes()
    if public:
        assert hasattr(quiv, "__all__"), f"quiv exports {sorted(public)} but has no __all__"
    exported = set(_declared())
    assert not exported - public, (
        f"in quiv.__all__ but not defined on quiv: {sorted(exported - public)}"
    )
    assert not public - exported, (
        f"public on quiv but missing from quiv.__all__: {sorted(public - exported)}"
    )


def test_exported_classes_and_functions_claim_the_quiv_module() -> None:
    # quiv/__init__.py rewrites __module__ of re-exported objects (as anyio <= 4.14
    # does), so reprs, tracebacks and the docs show ``quiv.Name``, not the private
    # module that defines it.
    wrong = {}
    for name in _declared():
        value = getattr(quiv, name)
        if not (inspect.isclass(value) or inspect.isroutine(value)):
            continue
        module = getattr(value, "__module__", None)
        if module is None:  # some builtins and C-level callables have none
            continue
        if module != "quiv":
            wrong[name] = module
    assert not wrong, f"__module__ is not 'quiv' for: {wrong}"


def test_the_old_fake_clock_name_still_works_and_is_deprecated() -> None:
    import quiv
    from quiv.testing import FakeClock

    with pytest.warns(DeprecationWarning, match=r"quiv\.testing\.FakeClock"):
        old = quiv.FakeClock
    assert old is FakeClock
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = quiv.no_such_name  # type: ignore[attr-defined]


def test_the_seams_are_public() -> None:
    from quiv.abc import Clock, Store, Trigger
    from quiv.testing import FakeClock

    assert isinstance(FakeClock(), Clock)
    assert Store.__abstractmethods__  # an interface, not an implementation
    assert hasattr(Trigger, "next_fire")
