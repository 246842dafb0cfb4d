"""Handler inspection: sync or async, and which values to inject.

A handler receives its own ``args``/``kwargs`` plus any of the injected values
it declares by name (``_job_id``, or ``job_id`` as the ``quiv`` 1.4 package on
PyPI spells it). Only declared parameters are injected; ``**kwargs`` gets nothing.
"""

from __future__ import annotations

import functools
import inspect
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import ConfigurationError, HandlerRegistrationError, QuivError

__all__ = (
    "HandlerSpec",
    "callable_name",
    "check_positional",
    "inspect_handler",
    "is_async_callable",
)

Injected = Literal["job_id", "stop_event", "progress_hook"]

#: parameter name -> what it receives
INJECTED_NAMES: Mapping[str, Injected] = {
    "_job_id": "job_id",
    "job_id": "job_id",
    "_stop_event": "stop_event",
    "stop_event": "stop_event",
    "_progress_hook": "progress_hook",
    "progress_hook": "progress_hook",
}


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """What the runner needs to know about a handler, without the handler itself.

    Specs are cached per handler object in a weak-keyed cache, so a spec must
    never refer to its handler: a value that holds its own key keeps the key
    alive, and no lambda, closure or bound method (with its ``self``) would
    ever be freed. The task keeps the handler; the spec only describes it.
    """

    is_async: bool
    #: declared parameter name -> injected value kind
    injected: Mapping[str, Injected]
    #: injected parameters that a positional argument could bind to -> position
    positions: Mapping[str, int]
    name: str
    #: why it cannot be a handler, if so (checked once, when first inspected):
    #: the error to raise and its message, where ``{param}`` names the parameter
    problem: tuple[type[QuivError], str] | None = None


def callable_name(func: object) -> str:
    """A readable name for *func* (for logs and reprs)."""
    if isinstance(func, types.FunctionType):  # quiv's wrapper of a progress callback
        func = getattr(func, "quiv_callback", func)
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__qualname__", None) or getattr(type(func), "__qualname__", None)
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module and name else repr(func)


def is_async_callable(func: object) -> bool:
    """Whether calling *func* returns a coroutine.

    Sees through :func:`functools.partial` and objects whose ``__call__`` is
    ``async def``. A sync wrapper that returns a coroutine is detected when it
    runs: the runner then awaits the coroutine in a worker loop.
    """
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if not inspect.isfunction(func) and not inspect.ismethod(func) and callable(func):
        call = getattr(type(func), "__call__", None)  # noqa: B004
        return inspect.iscoroutinefunction(call)
    return False


_cache: weakref.WeakKeyDictionary[Any, HandlerSpec] = weakref.WeakKeyDictionary()


def _spec(func: Callable[..., Any]) -> HandlerSpec:
    """Inspect *func*; cached per function object (many tasks share one handler)."""
    try:
        cached = _cache.get(func)
    except TypeError:  # not weak-referenceable or not hashable
        cached = None
    if cached is None:
        injected, positions = _declared_injections(func)
        cached = HandlerSpec(
            is_async=is_async_callable(func),
            injected=injected,
            positions=positions,
            name=callable_name(func),
            problem=_problem(func, injected),
        )
        try:
            _cache[func] = cached
        except TypeError:
            pass
    return cached


def _problem(
    func: Callable[..., Any], injected: Mapping[str, Injected]
) -> tuple[type[QuivError], str] | None:
    """Why *func* cannot be a handler (see :attr:`HandlerSpec.problem`), or ``None``."""
    target: object = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        return HandlerRegistrationError, (
            "{param} must be a function or coroutine function, not a generator function "
            f"(calling it would not run its body), got {func!r}"
        )
    seen: dict[Injected, str] = {}
    for name, kind in injected.items():
        if kind in seen:
            return ConfigurationError, (
                f"{{param}} declares both {seen[kind]!r} and {name!r}; "
                "they receive the same value, declare only one"
            )
        seen[kind] = name
    return None


def _declared_injections(
    func: Callable[..., Any],
) -> tuple[dict[str, Injected], dict[str, int]]:
    """The injected parameters *func* declares, and the positions of those that
    a positional argument would bind to."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins and other uninspectable callables
        return {}, {}
    declared: dict[str, Injected] = {}
    positions: dict[str, int] = {}
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        kind = INJECTED_NAMES.get(parameter.name)
        if kind is not None:
            declared[parameter.name] = kind
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                positions[parameter.name] = index
    return declared, positions


def check_positional(spec: HandlerSpec, args: tuple[Any, ...], *, param: str = "func") -> None:
    """Reject positional *args* that would bind to a parameter quiv injects.

    ``def handler(job_id)`` called with ``args=(42,)`` would otherwise fail
    with a :class:`TypeError` ("multiple values") each time a job runs.

    :raises ConfigurationError: naming the parameter and the argument
    """
    for name, index in spec.positions.items():
        if index < len(args):
            raise ConfigurationError(
                f"args[{index}]={args[index]!r} would bind to parameter {name!r} of {param}, "
                f"which quiv injects; pass fewer positional arguments, or make {name!r} "
                "keyword-only"
            )


def inspect_handler(func: object, kwargs: Mapping[str, Any], *, param: str = "func") -> HandlerSpec:
    """Inspect *func* and check it against *kwargs*.

    :raises HandlerRegistrationError: if *func* is not callable, or is a
        generator function (its body would never run)
    :raises ConfigurationError: if it declares both spellings of one injected
        value, or *kwargs* supplies a name that will be injected
    """
    if not callable(func):
        raise HandlerRegistrationError(f"{param} must be callable, got {func!r}")
    spec = _spec(func)
    if spec.problem is not None:
        error, message = spec.problem
        raise error(message.replace("{param}", param))
    injected = spec.injected
    clashes = sorted(set(injected) & set(kwargs)) if kwargs and injected else []
    if clashes:
        raise ConfigurationError(
            f"kwargs key {clashes[0]!r} collides with a parameter quiv injects into {param}"
        )
    return spec
