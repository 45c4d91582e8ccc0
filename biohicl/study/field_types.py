"""A config dataclass's fields checked against their annotations (``seeds: 3`` for ``list[int]``), so a typo in a
study config is a one-line error naming the field when it is read, not a traceback after the study trained."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from biohicl.errors import ConfigError


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
        return isinstance(value, int | float if hint is float else int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_field_types(spec: Any, scope: str = "") -> None:
    """A :class:`ConfigError` naming the first field of the dataclass ``spec`` whose value is not of its annotated
    type (``seeds: 3`` for ``list[int]``), before a study plans or trains anything with it."""
    hints = typing.get_type_hints(type(spec))
    for f in fields(spec):
        value = getattr(spec, f.name)
        if not _matches(value, hints[f.name]):
            hint = hints[f.name]
            shown = (
                hint.__name__
                if isinstance(hint, type)
                else str(hint).replace("typing.", "").replace("NoneType", "None")
            )
            raise ConfigError(f"{scope + '.' if scope else ''}{f.name}: expected {shown}, got {value!r}")
