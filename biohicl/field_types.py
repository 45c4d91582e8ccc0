"""A config dataclass's fields checked against their annotations (``seeds: 3`` for ``list[int]``), so a typo in a
study config, a release manifest or a saved ``biohicl_config.json`` is a one-line error naming the field when it is
read, not a traceback (or a truthy ``"false"``) later."""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from biohicl.errors import ConfigError

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool`` (JSON's ``true`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_or_none(value: Any) -> int | None:
    """``value`` when :func:`is_int`, else None (a recorded count that is missing or not a whole number)."""
    return value if is_int(value) else None


def is_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or a ``float`` and not a ``bool`` (JSON's ``true`` is not a metric); NaN and
    infinity are numbers here, a caller that needs a finite one checks ``math.isfinite`` too."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """Whether ``value`` is a whole number of at least 1 (a row count, a batch size, a cap): an ``int``, not a
    ``bool``."""
    return is_int(value) and value >= 1


def check_count(name: str, value: Any, meaning: str = "", *, optional: bool = False) -> None:
    """A :class:`ConfigError` naming ``name`` unless ``value`` is a whole number of at least 1 (:func:`is_count`), or
    None where ``optional``; ``meaning`` (``the first N queries``) says what it counts, in brackets."""
    if not (is_count(value) or (optional and value is None)):
        said = f" ({meaning})" if meaning else ""
        raise ConfigError(f"{name}: must be a whole number of at least 1{said}, got {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (a field annotation: unions, ``list[...]``, ``dict[..., ...]``, plain
    classes); a bool is not a number, an int is a float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, Mapping) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    if hint in (int, float):
        return isinstance(value, numbers.Real if hint is float else numbers.Integral) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def describe(hint: Any) -> str:
    """A field annotation in words, as a YAML or JSON user reads it: ``list[int] | None`` → "a list of integers or
    null", ``bool`` → "true or false"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any value"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in sorted(args, key=lambda arg: arg is type(None)))
    if origin is list:
        return f"a list of {_plural(args[0])}" if _plural(args[0]) else "a list"
    if origin is dict:
        key, value = (_plural(arg) for arg in args)
        return f"a mapping of {key} to {value}" if key and value else "a mapping"
    return _NAMES.get(hint) or f"a {getattr(hint, '__name__', hint)}"


def _plural(hint: Any) -> str | None:
    """``int`` → "integers", ``list[int]`` → "lists of integers"; None for what has no short plural."""
    if typing.get_origin(hint) is list:
        inner = _plural(typing.get_args(hint)[0])
        return f"lists of {inner}" if inner else None
    return _PLURALS.get(hint)


def check_field_types(spec: Any, scope: str = "") -> None:
    """A :class:`ConfigError` naming the first field of the dataclass ``spec`` whose value is not of its annotated
    type (``seeds: expected a list of integers, got 3``); ``scope`` prefixes the field (``dataset.top_k``)."""
    hints = typing.get_type_hints(type(spec))
    for f in fields(spec):
        value, hint = getattr(spec, f.name), hints[f.name]
        if not _matches(value, hint):
            quote = " (quote it)" if _matches("", hint) and isinstance(value, int | float) else ""
            raise ConfigError(
                f"{scope + '.' if scope else ''}{f.name}: expected {describe(hint)}, got {value!r}{quote}"
            )
