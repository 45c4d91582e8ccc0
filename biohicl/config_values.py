"""How a config file's values are read: the file itself, and each value as its option would read it from the command
line (``biohicl <command> --config FILE`` in :mod:`biohicl.cli.parser`, and a study config's training settings)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers.hf_argparser import HfArgumentParser, string_to_bool

from biohicl.errors import ConfigError


def read_config(path: str | Path, expected: str = "a mapping of option names to values") -> dict[str, Any]:
    """A config file: a YAML (``.yaml``/``.yml``, or anything else) or JSON (``.json``: YAML would read JSON's
    ``2e-05`` as a string) mapping, empty for an empty file; one-line errors, ``expected`` naming what the top
    level must be."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError and friends
        raise ConfigError(f"{path}: cannot parse ({err})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return values


def declared_types(types: Sequence[type]) -> dict[str, str]:
    """Each field's annotation as text (``"None | str | list[str]"``), read before ``HfArgumentParser``, which
    narrows the dataclass fields' ``type`` in place."""
    return {name: str(hint) for dtype in types for name, hint in typing.get_type_hints(dtype).items()}


def masked_token(name: str, value: Any) -> bool:
    """A token ``TrainingArguments.to_dict`` masked (``hub_token: <HUB_TOKEN>``): not a value, as if not given."""
    return name.endswith("_token") and value == f"<{name.upper()}>"


def config_value(path: str, action: argparse.Action, value: Any, declared: str = "", optional: bool = True) -> Any:
    """A config file's ``value`` as the command line would give it to ``action``: a list for a repeatable or
    several-value option (a single value wrapped), one value otherwise, each through the option's type. ``null``
    is None where the field is ``optional`` (defaults to None) and refused otherwise; a mapping, or a list for
    a one-value option, is kept only where the field's ``declared`` type admits it (``report_to: list[str]``)."""
    several = action.nargs in ("+", "*")
    if value is None:
        if optional:
            return None
        kind = f"list of {_kind(action)} (none: [])" if several else _kind(action)
        raise ConfigError(f"{path}: {action.dest}: null is not a valid {kind}")
    if isinstance(value, Mapping):
        if "dict" in declared.lower():
            return value
        raise ConfigError(f"{path}: {action.dest}: a mapping is not a valid {_kind(action)}")
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        if several:  # one list per occurrence (--input a b --input c): a single value is a list of one
            return [
                [_config_item(path, action, v) for v in (item if isinstance(item, list) else [item])] for item in items
            ]
        return [_config_item(path, action, item) for item in items]
    if several or (isinstance(value, list) and "list[" in declared.lower()):
        return [_config_item(path, action, item) for item in (value if isinstance(value, list) else [value])]
    if isinstance(value, list):
        raise ConfigError(f"{path}: {action.dest}: expected one value, got a list")
    return _config_item(path, action, value)


def _kind(action: argparse.Action) -> str:
    return "true/false" if action.type is string_to_bool else getattr(action.type, "__name__", None) or "value"


def _config_item(path: str, action: argparse.Action, value: Any) -> Any:
    """One value of a config file through ``action``'s type (a string or number, read as its text, like a flag's
    value) and checked against its choices."""
    if isinstance(value, list):
        raise ConfigError(f"{path}: {action.dest}: expected single values, got a nested list")
    if value is None or isinstance(value, Mapping):
        raise ConfigError(f"{path}: {action.dest}: expected single values, got {value!r}")
    if action.type is not None and isinstance(value, (str, int, float)):
        try:
            value = action.type(str(value))
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise ConfigError(f"{path}: {action.dest}: {value!r} is not a valid {_kind(action)}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{path}: {action.dest}: {value!r} is not one of {choices}")
    return value


def check_known_fields(values: Mapping[str, Any], fields: Iterable[str], source: str) -> None:
    """A one-line :class:`ConfigError` naming ``source`` and each key of ``values`` not in ``fields``, with the
    closest field names."""
    fields = list(fields)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        close = [m for key in unknown for m in difflib.get_close_matches(key, fields, n=1, cutoff=0.75)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}{hint}")


def convert_config_values(dataclass_type: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` (a mapping of ``dataclass_type``'s fields) converted as a ``--config`` file's are: each through
    its option's type and checked (a one-line :class:`ConfigError` naming ``source`` and the field; an unknown
    field with the closest names)."""
    fields = {f.name: f for f in dataclasses.fields(dataclass_type) if f.init}
    check_known_fields(values, fields, source)
    declared = declared_types([dataclass_type])
    parser = HfArgumentParser([dataclass_type])
    converted: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest in values and action.dest not in converted:
            optional = fields[action.dest].default is None
            converted[action.dest] = config_value(
                source, action, values[action.dest], declared.get(action.dest, ""), optional
            )
    return converted
