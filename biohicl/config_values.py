"""How a config file's values are read: the file itself, and each value as its option would read it from the command
line (``biohicl <command> --config FILE`` in :mod:`biohicl.cli.parser`, and a study config's training settings)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import logging
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers.hf_argparser import HfArgumentParser, string_to_bool

from biohicl.errors import ConfigError, json_error, location

logger = logging.getLogger(__name__)

#: The biohicl package folder: an install's holds the repository's ``configs/`` as ``configs/`` (pyproject.toml's
#: ``force-include``); a checkout's has them beside it.
PACKAGE_FOLDER = Path(__file__).resolve().parent


def read_config(path: str | Path, expected: str = "a mapping of option names to values") -> dict[str, Any]:
    """A config file: a YAML (``.yaml``/``.yml``, or anything else) or JSON (``.json``: YAML would read JSON's
    ``2e-05`` as a string) mapping, empty for an empty file; one-line errors, ``expected`` naming what the top
    level must be, a key given twice in a mapping among them (JSON that is not valid: ``FILE: line N: not valid JSON
    (... at column C)``)."""
    path = Path(path)
    if not path.exists() and (shipped := shipped_config(path)) is not None:
        logger.info("%s is not in %s: reading the copy that ships with biohicl, %s", path, Path.cwd(), shipped)
        path = shipped
    text = read_config_text(path)
    try:
        values = _json_unique_keys(text, path) if path.suffix.lower() == ".json" else load_yaml(text, path)
    except ConfigError:
        raise
    except json.JSONDecodeError as err:  # its line and column, as biohicl.jsonio.read_json words them
        raise ConfigError(f"{location(path, line=err.lineno)}: {json_error(err)}") from None
    except RecursionError:  # JSON nested deeper than the decoder's recursion limit, as read_json words it
        raise ConfigError(f"{path}: not valid JSON (nested too deeply to read)") from None
    except Exception as err:  # yaml.YAMLError and friends
        raise ConfigError(f"{path}: cannot parse ({err})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return values


def shipped_config(path: Path, package: Path = PACKAGE_FOLDER) -> Path | None:
    """The copy that ships with biohicl of a relative ``configs/...`` path (``configs/biohicl_minilm.yaml``, as
    ``--help``, the docs and the registry name them): the ``configs/`` folder inside ``package`` (a pip install), else
    the one beside it (a checkout, run from another folder); None for any other path or a file that is not there."""
    parts = path.parts
    if path.is_absolute() or len(parts) < 2 or parts[0] != "configs" or ".." in parts:
        return None
    folder = package / "configs" if (package / "configs").is_dir() else package.parent / "configs"
    shipped = folder.joinpath(*parts[1:])
    return shipped if shipped.is_file() else None


def read_config_text(path: str | Path, kind: str = "config file") -> str:
    """The text of config file ``path``; a one-line :class:`ConfigError` naming it (a ``kind`` that is missing, a
    folder or not a regular file, bytes that are not UTF-8, or an error reading it)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a {kind}")
    if not path.exists():
        raise ConfigError(f"{path}: {kind} not found")
    if not path.is_file():  # a FIFO would block the read; a device never ends
        raise ConfigError(f"{path}: not a regular file, not a {kind}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None


class _KeyGivenTwice(Exception):
    def __init__(self, key: Any, line: int | None):
        super().__init__(key, line)
        self.key, self.line = key, line


def load_yaml(text: str, path: str | Path, cannot: str = "cannot parse") -> Any:
    """``text`` read as YAML by a safe loader that keeps an unquoted date as its text and refuses a key given twice
    in one mapping (PyYAML keeps the last one silently): a one-line :class:`ConfigError` naming ``path``, the line
    and the key; any other failure (malformed YAML, ``!!timestamp 2001-02-30``, brackets nested thousands deep)
    is ``f"{path}: {cannot} ({error})"``."""
    import yaml

    try:
        return _unique_key_loader()(text).get_single_data()
    except _KeyGivenTwice as twice:
        raise ConfigError(f"{location(path, line=twice.line)}: key {twice.key!r} given twice") from None
    except RecursionError:
        raise ConfigError(f"{path}: {cannot} (nested too deeply)") from None
    except (yaml.YAMLError, ValueError, TypeError) as err:
        raise ConfigError(f"{path}: {cannot} ({err})") from None


@functools.cache
def _unique_key_loader() -> type:
    """A ``yaml.SafeLoader`` whose mappings refuse a key given twice (keys a ``<<`` merge brings may be
    overridden, as YAML allows) and which reads an unquoted ``2024-05-01`` as that text, as a user means it in
    ``run_name`` (YAML 1.1 made it a ``datetime.date``, which no option reads); ``!!timestamp`` still makes one."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        yaml_implicit_resolvers: typing.ClassVar[dict[str | None, list[tuple[str, Any]]]] = {
            first: [(tag, YAML12_NUMBERS.get(tag, regexp)) for tag, regexp in resolvers if tag != TIMESTAMP]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise _KeyGivenTwice(key, key_node.start_mark.line + 1)
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader's own error names it
                    continue
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
            """YAML 1.2's integers: ``010`` is ten (YAML 1.1: octal 8), ``0o10`` octal, ``0x10`` hexadecimal."""
            text = str(self.construct_scalar(node))
            if text[:2] in ("0o", "0x"):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)  # `1:20` or `1_000` under an explicit !!int: a ValueError, one line

    UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)
    return UniqueKeyLoader


TIMESTAMP = "tag:yaml.org,2002:timestamp"
#: YAML 1.2's number forms, replacing YAML 1.1's, which also read ``12:30`` as 750 (base 60) and ``010`` as 8.
YAML12_NUMBERS = {
    "tag:yaml.org,2002:int": re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    "tag:yaml.org,2002:float": re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
}


def _json_unique_keys(text: str, path: Path) -> Any:
    """``text`` as JSON, a key given twice in one object refused (its line from the YAML loader, which reads
    JSON's structure; none where it cannot)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in items:
            if key in values:
                raise _KeyGivenTwice(key, None)
            values[key] = value
        return values

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _KeyGivenTwice as twice:
        first = twice
    try:
        _unique_key_loader()(text).get_single_data()
    except _KeyGivenTwice as twice:
        first = twice
    except Exception:  # JSON the YAML loader cannot read: no line to name
        pass
    raise ConfigError(f"{location(path, line=first.line or None)}: key {first.key!r} given twice")


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


#: Text options among whose words are true and false (``resume_from_checkpoint``: a folder, or ``last``, ``true`` or
#: ``yes`` for the newest checkpoint, ``false`` for none): a config file's boolean there is its word, ``true`` or
#: ``false``, as the command line gives it (YAML's ``yes`` is ``true``), not refused as YAML's reading of a word.
BOOLEAN_WORD_OPTIONS = frozenset({"resume_from_checkpoint"})


def _kind(action: argparse.Action) -> str:
    return "true/false" if action.type is string_to_bool else getattr(action.type, "__name__", None) or "value"


def _config_item(path: str, action: argparse.Action, value: Any) -> Any:
    """One value of a config file through ``action``'s type (a string or number, read as its text, like a flag's
    value; a boolean only for a bool option or one of :data:`BOOLEAN_WORD_OPTIONS`; any other type refused) and
    checked against its choices."""
    if isinstance(value, list):
        raise ConfigError(f"{path}: {action.dest}: expected single values, got a nested list")
    if value is None or isinstance(value, Mapping):
        raise ConfigError(f"{path}: {action.dest}: expected single values, got {value!r}")
    if not isinstance(value, (str, int, float)):  # YAML's !!binary bytes, !!set, !!timestamp: no flag gives one
        raise ConfigError(f"{path}: {action.dest}: a {type(value).__name__} is not a valid {_kind(action)}")
    if isinstance(value, bool) and action.type is not string_to_bool:
        if action.dest in BOOLEAN_WORD_OPTIONS:
            value = str(value).lower()  # the word the command line gives
        elif str(path).lower().endswith(".json"):
            raise ConfigError(
                f"{path}: {action.dest}: {json.dumps(value)} is a JSON boolean, not text; quote the word for a text "
                'option ("save_strategy": "no")'
            )
        else:
            raise ConfigError(  # `save_strategy: no` is YAML's false: it became the text 'False'
                f"{path}: {action.dest}: {value} is how YAML reads an unquoted yes/no/on/off/true/false; quote the "
                "word for a text option (save_strategy: 'no')"
            )
    if action.type is not None:
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
