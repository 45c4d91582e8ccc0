"""A study config's checks of what its runs train with, when the config is read (so ``--dry_run`` refuses them),
by the rules ``biohicl train`` applies before loading anything: its seeds and
:func:`~biohicl.training.arg_checks.check_run_values`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from types import SimpleNamespace
from typing import Any

from biohicl.errors import ConfigError
from biohicl.training.arg_checks import SEED_LIMIT, check_run_values, check_seed

#: What a model or variant name may hold: it is a folder of the study (``<model>/<variant>/seed<k>``), an ``--only``
#: choice and a word of its progress lines, which ``scripts/study_from_logs.py`` reads back.
RUN_NAME = re.compile(r"[A-Za-z0-9._-]+")
#: Windows' device names: a file or folder named so, in any case and with any extension (``nul.txt``), is the device.
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10))}
)
#: The end of the refusal of two names that are one folder on a case-insensitive file system.
ONE_FOLDER = "one folder where case is ignored (macOS, Windows)"


def check_run_name(name: str, field: str) -> None:
    """Refuse a model or variant ``name`` that is not one plain folder name of its own on every system, naming
    ``field``: ``base`` in any case (the untrained base's folder), empty, starting with ``.`` (``.``, ``../x``),
    holding anything but letters, digits, ``.``, ``_`` and ``-`` (``a/b``, ``x,y``, ``no mse``), ending in ``.``
    (Windows drops it: ``full.`` is ``full``) or a Windows device name (``con``, ``nul.txt``)."""
    if name == "base":
        raise ConfigError(f"{field}: 'base' is reserved for the untrained base")
    if name.casefold() == "base":
        raise ConfigError(f"{field}: {name!r} is reserved for the untrained base: it and 'base' are {ONE_FOLDER}")
    if not RUN_NAME.fullmatch(name) or name.startswith("."):
        raise ConfigError(
            f"{field}: {name!r} is not a plain folder name (letters, digits, '.', '_' and '-', not starting with '.')"
        )
    if name.endswith("."):
        raise ConfigError(f"{field}: {name!r} is not a portable folder name: Windows drops its trailing '.'")
    stem = name.partition(".")[0]
    if stem.casefold() in WINDOWS_DEVICES:
        raise ConfigError(
            f"{field}: {name!r} is not a portable folder name: {stem!r} is a Windows device name "
            "(con, prn, aux, nul, com1-9, lpt1-9, with any extension)"
        )


def check_run_names(names: Sequence[str], field: str) -> None:
    """:func:`check_run_name` on each of ``names`` (the models', or the variants'), then refuse two that are equal
    ignoring case (``Full``, ``full``): macOS and Windows make them one folder, where one's run would be found by the
    other as its own, trained with other settings."""
    seen: dict[str, str] = {}
    for name in names:
        check_run_name(name, field)
        if field == "models" and name.casefold() == "dataset":  # <output_dir>/<model> beside <output_dir>/dataset
            raise ConfigError(
                f"{field}: {name!r} is the folder of the dataset the study builds; name the model otherwise"
            )
    for name in names:
        first = seen.setdefault(name.casefold(), name)
        if first != name:
            raise ConfigError(
                f"{field}: {first!r} and {name!r} are {ONE_FOLDER}; give names that differ in more than case"
            )


def check_task_splits(scopes: Mapping[str, Sequence[str] | None]) -> None:
    """Refuse a task spec naming a split its built-in task has not (``pubmedqa:deV``), naming the scope it is in
    (scope name → its task specs): when the config is read, before a run evaluates anything."""
    from biohicl.evaluation.tasks import check_split, parse_task_spec

    for scope, specs in scopes.items():
        for spec in specs or ():
            check_split(*parse_task_spec(spec), field=scope)


def check_eval_device(name: str) -> None:
    """A :class:`ConfigError` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    kind, _, index = name.partition(":")
    if name != "auto" and not (kind in ("cpu", "cuda") and (not index or (kind == "cuda" and index.isdigit()))):
        raise ConfigError(f"eval_device: {name!r} is not auto, cpu, cuda or cuda:N")


def check_seeds(seeds: Sequence[int], name: str) -> None:
    """Refuse a seed training cannot take (training's rule, ``[0, 2**32)``), or one given twice (its run would run
    once and be counted twice in the report's statistics), naming ``name``."""
    for i, seed in enumerate(seeds):
        check_seed(seed, name, SEED_LIMIT)
        if seed in seeds[:i]:
            raise ConfigError(f"{name}: seed {seed} is given twice; give each seed once")


def check_run_settings(settings: Mapping[str, Any], scopes: Mapping[str, Mapping[str, Any]]) -> None:
    """:func:`~biohicl.training.arg_checks.check_run_values` on one run's ``settings`` over
    ``BioHiCLTrainingArguments``' defaults, and the loss they describe built (a study gives no extra term, so one
    with no term on is refused here, not when its run starts). Not the arguments themselves: transformers' own
    checks depend on the machine (``bf16`` on a CPU), and a study is read back where it did not run. A refusal is
    prefixed by the first of ``scopes`` (name → the settings it sets, the winning one first) that sets a value it
    names, else by the last."""
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.objective import build_loss

    values = {
        f.name: f.default if f.default_factory is MISSING else f.default_factory()
        for f in fields(BioHiCLTrainingArguments)
        if f.init and (f.default is not MISSING or f.default_factory is not MISSING)
    }
    run = SimpleNamespace(**{**values, **settings})
    try:
        check_run_values(run)  # it normalises the copy, never the config
        build_loss(run)  # and a run of no term on: a study gives no extra term
    except ConfigError as err:
        names = set(str(err).partition(":")[0].split(", "))  # the fields it names (the loss's terms, for none on)
        scope = next((scope for scope, set_here in scopes.items() if names & set(set_here)), list(scopes)[-1])
        raise ConfigError(f"{scope}: {err}") from None
