"""The one command-line parser of every ``biohicl`` command: :func:`parse_command`.

A command's options are the fields of its dataclass(es), read by :class:`transformers.HfArgumentParser`, so one
convention holds everywhere:

- an option is spelled like its field, ``--top_k``; the dashed ``--top-k`` is accepted as an alias. A bool field
  is a flag (``--dry_run``, or ``--dry_run false``), also one that defaults to None (not given); one that defaults
  to True also gets ``--no_<field>``;
- ``--config FILE``: a YAML or JSON mapping whose keys are the fields. Its values become the defaults, options on
  the command line override them, and a required field given in the file is no longer required on the command
  line. An unknown key is refused, naming the file and the key. A value is read as the option reads its own: a
  single value for a repeatable or several-value option is a list of one (``source: medline-text``), a list for a
  one-value option is refused (unless the field's type admits a list: ``report_to: [tensorboard]``), and strings
  and numbers go through the option's type (``limit: 2.5`` for an int option is refused). ``null`` is None for a
  field that defaults to None and refused for any other; a mapping only for a field typed as one. A token
  ``TrainingArguments`` masked when saving (``hub_token: <HUB_TOKEN>``) counts as not given, so a run's
  ``biohicl_training_args.json`` reads back as its arguments;
- every usage error (misspelled option, bad value, missing option, unknown config key) is a one-line
  :class:`~biohicl.errors.ConfigError`, with a "did you mean" hint for a misspelled option, never a usage dump; a
  value the dataclass's own checks refuse (``lambda_con: -1``) names the config file first when it came from it.

``biohicl reproduce`` is the exception for ``--config``: there it is the study file (a nested YAML, not options).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from biohicl.config_values import check_known_fields, config_value, declared_types, masked_token, read_config
from biohicl.errors import ConfigError

#: suffixes of a ``--config`` file
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
#: field metadata key: attributes set on the field's argparse action after ``HfArgumentParser`` made it (for
#: what its type-driven choices get wrong, e.g. ``{"nargs": None}`` on a ``list[str]`` field with ``"action":
#: "append"``: one value per occurrence of the option)
ARGPARSE = "argparse"
#: field metadata key: a ``str`` option the command splits on commas (``--tasks a,b``); in a config file a list
#: (``tasks: [a, b]``) is joined with commas
COMMA_LIST = "comma_list"
#: attribute set on the argparse action of a field without a default: required, though a positional or the config
#: file may give it (argparse's own ``required`` is then False)
REQUIRED = "_biohicl_required"
#: field metadata key: the words ``--help`` shows as the default of a field that defaults to None ("the model's
#: own": ``(default: the model's own)``); without them such a field shows no default, never ``(default: None)``
DEFAULT_WORDS = "default_words"
_OURS = {ARGPARSE, COMMA_LIST, DEFAULT_WORDS}  # metadata keys that are not argparse keywords
#: help text that states the option's default itself: "(default: ...)", "(default 4·k)", "x (default)", "default:
#: ...", "; default main", a sentence "Defaults to ..."/"Defaults based on ...", "... by default" (not "Default
#: split", "default corpora", "metric_for_best_model then defaults to dev_score", "uses default configuration")
_STATES_DEFAULT = re.compile(r"\(default\b|\bdefault:|[;,]\s*default\b|(^|\. )Defaults\b|\bby default\b", re.IGNORECASE)
_BOOL_WORDS = {"yes", "true", "t", "y", "1", "no", "false", "f", "n", "0"}
_CONFIG_HELP = (
    "YAML or JSON file of these options (keys: the option names without --); options on the command line override "
    "its values."
)


#: reST inline markup of a docstring: ``literal``, and a role, :class:`~a.b.C` / :mod:`a.b` / :func:`text <a.b>` /
#: :py:func:`f` (its colon starts a word: ``pubmedqa:dev:`` is no role)
_LITERAL = re.compile(r"``(.+?)``", re.S)
_ROLE = re.compile(r"(?<![\w:]):(?:[a-z]+:)?[a-z]+:`(?:~(?:[\w.]+\.)?([^`<]+?)|([^`<]+?)\s*<[^`>]+>|([^`<]+?))`")
#: a literal block's marker: "e.g.::" is "e.g.:", a "::" standing alone (after a space) is dropped
_LITERAL_BLOCK = re.compile(r"(\S)::$|\s*(?<!\S)::$", re.M)


def terminal_text(text: str) -> str:
    """A docstring as a terminal shows it: reST's ``literal`` as `literal`, a role (:class:`~a.b.C`) as `C`, a
    literal block's ``::`` as ":" (or nothing after a space); the rest as written."""
    text = _LITERAL.sub(r"`\1`", text)
    text = _ROLE.sub(lambda m: f"`{next(g for g in m.groups() if g).strip()}`", text)
    return _LITERAL_BLOCK.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the description (a command's docstring, through :func:`terminal_text`) printed
    as written. A required option (one of :data:`REQUIRED` too: a required field a positional or the config file may
    give) shows no default, nor does an option whose help already states its own ("(default: cuda if available)");
    an option that defaults to None shows its field's :data:`DEFAULT_WORDS`, else "(default: not given)" for an
    option taking an optional value (a flag), else no default: never "None"; nor does a repeatable option that
    defaults to none given (never "[]")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required or getattr(action, REQUIRED, False) or _STATES_DEFAULT.search(text):
            return action.help
        if action.default in ([], ()):  # a repeatable option given no times: "(default: [])" says nothing typable
            return action.help
        if action.default is None:  # an option left out is None: what that means, where the field says
            words = getattr(action, DEFAULT_WORDS, None) or ("not given" if action.nargs == "?" else None)
            return f"{text} (default: {words})" if words and action.option_strings else action.help
        return super()._get_help_string(action)


class _ConfigAbbreviated(argparse.Action):
    """``--config`` is taken out of argv before parsing; reaching this action means it was abbreviated."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise ConfigError(f"--config: spell the option out in full (see `{parser.prog} --help`)")


class CommandParser(HfArgumentParser):
    """``HfArgumentParser`` whose usage errors are one-line :class:`ConfigError`\\ s, and whose fields may carry
    :data:`ARGPARSE` metadata."""

    def error(self, message: str):  # type: ignore[override]
        hint = ""
        if message.startswith("unrecognized arguments"):
            hint = close_options_hint(self, message) + config_file_hint(message)
        elif message.startswith("the following arguments are required"):  # argparse checks this first: the stray
            unknown = self.unknown_options(getattr(self, "argv", []))  # file and the misspelled option come after
            if unknown:
                hint = f"; unrecognized arguments: {' '.join(unknown)}"
                hint += close_options_hint(self, "unrecognized arguments: " + " ".join(unknown))
            hint += config_file_hint(": " + " ".join(stray_config_files(getattr(self, "argv", []))))
        raise ConfigError(f"{message}{hint} (see `{self.prog} --help`)")

    def unknown_options(self, argv: Sequence[str]) -> list[str]:
        """The ``--words`` of ``argv`` (before any ``=``, up to a ``--`` that ends the options) that are no option
        of this parser, nor an abbreviation of one."""
        known = list(self._option_string_actions)
        options = argv[: list(argv).index("--")] if "--" in argv else argv
        words = (arg.split("=", 1)[0] for arg in options if arg.startswith("--"))
        return [word for word in words if not any(option.startswith(word) for option in known)]

    def _get_option_tuples(self, option_string: str) -> list[tuple]:
        """Abbreviations matching both spellings of one option (``--top`` for ``--top_k``/``--top-k``) are not
        ambiguous: one match per action."""
        matches = super()._get_option_tuples(option_string)
        return [match for i, match in enumerate(matches) if all(match[0] is not m[0] for m in matches[:i])]

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field):
        overrides, words = field.metadata.get(ARGPARSE), field.metadata.get(DEFAULT_WORDS)
        if set(field.metadata) & _OURS:
            field = copy.copy(field)
            field.metadata = MappingProxyType({k: v for k, v in field.metadata.items() if k not in _OURS})
        HfArgumentParser._parse_dataclass_field(parser, field)
        action = next(a for a in parser._actions if a.dest == field.name)
        setattr(action, REQUIRED, _required(field))
        setattr(action, DEFAULT_WORDS, words)
        if action.type is string_to_bool and action.nargs is None:  # bool | None defaulting to None: a flag too
            action.nargs, action.const = "?", True
        for negative in (a for a in parser._actions if a.dest == field.name and a is not action):
            negative.help, negative.default = f"turn --{field.name} off", argparse.SUPPRESS  # not the positive help
        for name, value in (overrides or {}).items():
            setattr(action, name, value)


def canonical_options(parser: argparse.ArgumentParser) -> list[str]:
    """Each option's canonical spelling: its first long form (``--top_k``, not the ``--top-k`` alias)."""
    options = []
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if long:
            options.append(long[0])
    return options


def close_options_hint(parser: argparse.ArgumentParser, message: str) -> str:
    """`` (did you mean --top-kk → --top_k?)`` for the misspelled options of an "unrecognized arguments" message."""
    options = canonical_options(parser)
    hints = []
    for word in (w.split("=", 1)[0] for w in message.split(":", 1)[-1].split() if w.startswith("--")):
        close = difflib.get_close_matches("--" + word[2:].replace("-", "_"), options, n=1, cutoff=0.75)
        if close:
            hints.append(f"{word} → {close[0]}")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def config_file_hint(message: str) -> str:
    """`` (a config file goes after --config: --config run.yaml)`` when a stray argument is one."""
    words = message.split(":", 1)[-1].split()
    files = [w for w in words if w.lower().endswith(CONFIG_SUFFIXES) and not w.startswith("-")]
    return f" (a config file goes after --config: --config {files[0]})" if files else ""


def stray_config_files(argv: Sequence[str]) -> list[str]:
    """The existing ``.yaml``/``.yml``/``.json`` files among ``argv`` that no option takes as its value."""
    return [
        arg
        for i, arg in enumerate(argv)
        if _is_config_file(arg) and (i == 0 or not argv[i - 1].startswith("-") or "=" in argv[i - 1])
    ]


def _split_config(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(FILE of --config FILE / --config=FILE, the other arguments)``."""
    path, rest, items = None, [], list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        value = None
        if arg == "--config":
            if i + 1 == len(items):
                raise ConfigError("--config: expected one argument (a YAML or JSON file)")
            value, i = items[i + 1], i + 2
        elif arg.startswith("--config="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            rest.append(arg)
            i += 1
            continue
        if path is not None:
            raise ConfigError(f"--config: given twice ({path}, {value})")
        path = value
    return path, rest


def _bool_flags_keep_positionals(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--dataset FOLDER`` → ``--dataset=true FOLDER``: a bare bool flag (argparse ``nargs="?"``) must not take
    the positional that follows it as its value."""
    flags = {
        option
        for action in parser._actions
        if action.type is string_to_bool and action.nargs == "?"
        for option in action.option_strings
    }
    out = []
    for i, arg in enumerate(argv):
        following = argv[i + 1] if i + 1 < len(argv) else "-"
        takes_positional = not following.startswith("-") and following.lower() not in _BOOL_WORDS
        out.append(f"{arg}=true" if arg in flags and takes_positional else arg)
    return out


def _apply_config(
    parser: CommandParser,
    path: str,
    fields: Mapping[str, dataclasses.Field],
    declared: Mapping[str, str],
    comma_lists: Sequence[str] = (),
) -> tuple[dict[str, Any], set[str]]:
    """Make the file's values the parser's defaults; returns those of ``append`` options (filled in after
    parsing, so that an option on the command line replaces the file's list instead of extending it) and the
    fields the file gives."""
    values = {k: v for k, v in read_config(path).items() if not masked_token(k, v)}
    check_known_fields(values, fields, path)
    appended: dict[str, Any] = {}
    converted: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest not in values:
            continue
        action.required = False
        if action.dest in converted:  # the --no_<field> twin of a bool field: converted with the field's own action
            continue
        field, value = fields[action.dest], values[action.dest]
        if isinstance(value, list) and (field.metadata.get(COMMA_LIST) or field.name in comma_lists):
            value = ",".join(str(item) for item in value)  # a list of a comma-separated option
        converted[action.dest] = config_value(path, action, value, declared.get(field.name, ""), field.default is None)
        if isinstance(action, argparse._AppendAction):
            appended[action.dest] = converted[action.dest]
    parser.set_defaults(**{k: converted.get(k, v) for k, v in values.items() if k not in appended})
    return appended, set(values)


def parse_command(
    dataclass_types: type | Sequence[type],
    argv: Sequence[str],
    *,
    prog: str,
    description: str | None = None,
    positionals: Mapping[str, Mapping[str, Any]] | None = None,
    config_file: bool = True,
    intermixed: bool = False,
    comma_lists: Sequence[str] = (),
    hidden: Sequence[str] = (),
) -> tuple[Any, ...]:
    """Parse a command's ``argv`` into instances of ``dataclass_types`` (in order).

    ``positionals``: ``name → argparse.add_argument keywords`` of positional arguments. One named like a field
    fills that field (``biohicl evaluate MODEL`` = ``--model MODEL``, ``search INDEX QUERY...`` = ``--queries``
    once per word; both given and different is an error), and a config file may give it; where the field came
    from the file or its option and a ``*``/``+`` positional follows, the words go to that one (``search --config
    c.yaml QUERY`` with ``index:`` in the file);
    when ``positionals`` is given, a namespace of every positional's value follows the instances.
    ``config_file``: whether ``--config FILE`` supplies defaults (``biohicl reproduce`` has its own ``--config``).
    ``intermixed``: options may also stand between positionals (``INDEX --top_k 3 QUERY``: argparse's
    ``parse_intermixed_args``; otherwise a ``nargs="*"`` positional is consumed, empty, before the first option).
    ``comma_lists``: fields split on commas besides those marked with :data:`COMMA_LIST` metadata.
    ``hidden``: fields left out of ``--help`` though still parsed (an inherited one the command refuses when given).
    Usage errors raise a one-line :class:`ConfigError`; ``--help`` prints and exits (``SystemExit(0)``).
    """
    types = [dataclass_types] if isinstance(dataclass_types, type) else list(dataclass_types)
    argv = list(argv)
    config_path = None
    if config_file:
        config_path, argv = _split_config(argv)
    declared = declared_types(types)
    description = terminal_text(description) if description else description
    parser = CommandParser(types, prog=prog, description=description, formatter_class=_HelpFormatter)
    fields = {f.name: f for dtype in types for f in dataclasses.fields(dtype) if f.init}
    for action in (a for a in parser._actions if a.dest in hidden):
        action.help = argparse.SUPPRESS
    if config_file:
        parser.add_argument("--config", action=_ConfigAbbreviated, metavar="FILE", help=_CONFIG_HELP)
    linked: dict[str, str] = {}  # positional dest -> the field it fills
    for name, kwargs in (positionals or {}).items():
        if name in fields:
            dest = f"_positional_{name}"
            positional = parser.add_argument(dest, **{"metavar": name.upper(), **kwargs})
            setattr(positional, REQUIRED, _required(fields[name]))
            linked[dest] = name
            for action in parser._actions:  # the option is no longer required: the positional may give it
                if action.dest == name:
                    action.required = False
        else:
            parser.add_argument(name, **kwargs)
    appended, from_config = (
        _apply_config(parser, config_path, fields, declared, comma_lists) if config_path is not None else ({}, set())
    )
    parse = parser.parse_intermixed_args if intermixed else parser.parse_args
    parser.argv = _bool_flags_keep_positionals(parser, argv)
    values = vars(parse(parser.argv))
    for dest, value in appended.items():
        if not values.get(dest):
            values[dest] = value
    order = list(positionals or {})
    for dest, name in linked.items():
        given = values.pop(dest)
        following = order[order.index(name) + 1] if order.index(name) + 1 < len(order) else None
        if (
            given is not None
            and (name in from_config or values.get(name) != parser.get_default(name))
            and following is not None
            and (positionals or {})[following].get("nargs") in ("*", "+")
        ):  # the field came from --config or its option: the positional words are the next positional's
            words = next((d for d, n in linked.items() if n == following), following)  # its dest, when linked
            values[words] = [given, *values.get(words, [])]
            given = None
        if given is not None and given != []:
            if config_file and _is_config_file(given):
                raise ConfigError(f"{given} is a config file: give it as --config {given} (see `{prog} --help`)")
            flag, default = values.get(name), appended.get(name, parser.get_default(name))  # the file's list too
            if flag is not None and flag != default and flag != given:
                metavar = (positionals or {})[name].get("metavar", name.upper())
                raise ConfigError(_given_twice(name, metavar, given, flag))
            values[name] = given
        elif values.get(name) is None and _required(fields[name]):
            parser.error(f"the following arguments are required: {name.upper()} (or --{name})")
    from_file = {  # the fields whose value is the config file's (the command line did not change it; `is`: NaN)
        name
        for name, given in ((n, appended[n] if n in appended else parser.get_default(n)) for n in from_config)
        if name in values and (values[name] is given or values[name] == given)
    }
    instances = []
    for dtype in types:
        names = [f.name for f in dataclasses.fields(dtype) if f.init]
        try:
            instances.append(dtype(**{n: values.pop(n) for n in names}))
        except ConfigError as err:  # a value check once built: name the file when the value came from it
            named = re.match(r"((?:--)?\w+(?:, (?:--)?\w+)*): ", str(err))  # `lambda_con: `, `--batch_size: `
            if config_path is None or named is None or not from_file & {n.lstrip("-") for n in named[1].split(", ")}:
                raise
            raise ConfigError(f"{config_path}: {err}") from None
    if positionals is None:
        return tuple(instances)
    filled = {f.name: getattr(obj, f.name) for obj in instances for f in dataclasses.fields(obj) if f.init}
    return (*instances, argparse.Namespace(**{name: filled.get(name, values.get(name)) for name in positionals}))


def _given_twice(name: str, metavar: str, given: Any, flag: Any) -> str:
    """The one line of a field given both by its positional and by its option, in words: ``search IDX --queries q1
    q2`` gives two queries, one each way (a repeatable field's values are listed, not printed as Python lists)."""
    if isinstance(given, list):
        words, options = (", ".join(repr(value) for value in values) for values in (given, flag))
        return (
            f"{name}: given as {metavar} words ({words}) and as --{name} ({options}): give them either as {metavar} "
            f"words or as --{name} (once per {metavar.lower()}), not both"
        )
    return f"{name}: given twice, as {metavar} ({given!r}) and as --{name} ({flag!r}); give it once"


def _is_config_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(CONFIG_SUFFIXES) and Path(value).is_file()


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def csv_items(text: str) -> list[str]:
    """The items of a comma-separated option value (``"a, b,,c"`` -> ``["a", "b", "c"]``)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def csv_numbers(text: str, convert: Callable[[str], Any], option: str, kind: str) -> list[Any]:
    """The items of a comma-separated option value, each through ``convert`` (``int``, ``float``); a
    :class:`ConfigError` naming ``option`` when one does not convert."""
    try:
        return [convert(part) for part in csv_items(text)]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated {kind}, got {text!r}") from None
