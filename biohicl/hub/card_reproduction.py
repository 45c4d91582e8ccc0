"""What a model card says to train its run again and to check what it trained on: the sha256 of the dataset's files
and the digests of the code that trained it (``training_summary.json``), and the ``biohicl train --config
biohicl_training_args.json`` command that retrains it from the repo's own files
(:data:`~biohicl.hub.run_sources.RUN_RECORD_FILES`), only where the run trained what its arguments build: not a
soup, and no loss, extra term or adapter given in Python (:func:`given_in_python`), which the arguments do not hold."""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PureWindowsPath
from typing import Any

from biohicl.hub.card_adapter import LORA_KEYS
from biohicl.hub.card_hyperparameters import argument_defaults, loss_leaves
from biohicl.hub.run_sources import TRAINING_ARGS_FILE, path_name, without_machine_paths
from biohicl.models.soup import SOUP_RECORD_NAME
from biohicl.provenance import REPOSITORY_URL
from biohicl.training.loss_record import EXTRA_TERMS, is_biohicl_record
from biohicl.training.run_settings import PATH_ARGS

#: a git commit as ``training_summary.json``'s ``source_git`` records it
COMMIT = re.compile(r"[0-9a-f]{7,64}")

#: a digest as a run records it: sha256 hex, a source digest, or ``unknown`` (code a checkpoint did not name)
DIGEST = re.compile(r"[0-9a-z]{1,64}")


def _argument(args: dict[str, Any], name: str) -> Any:
    """The value of training argument ``name`` that ``biohicl train --config`` takes from ``args``: its own, else its
    default (an arguments file written before the argument existed); None for no argument of that name."""
    return args[name] if name in args else argument_defaults().get(name)


def _modules(value: Any) -> Any:
    """Target modules as a comparable value: a list sorted (peft keeps a set), a name (a regex) as it is."""
    return sorted(value) if isinstance(value, list) else value


def given_in_python(args: dict[str, Any], loss: Any, adapter: Any) -> str | None:
    """What the run trained that its arguments ``args`` do not build, in words (None: nothing): a recorded ``loss``
    other than BioHiCL's, with extra terms, or with a setting other than the training argument it is named after
    (:func:`~biohicl.hub.card_hyperparameters.loss_leaves`: a ``train_biohicl(loss=...)`` of its own); an ``adapter``
    (``adapter_config.json``) of another peft method, DoRA, or other LoRA settings than the arguments'
    (``train_biohicl(peft_config=...)``)."""
    if isinstance(loss, dict) and loss:
        if not is_biohicl_record(loss):
            return f"the loss {loss.get('class') or 'of its own'}"
        if loss.get(EXTRA_TERMS):
            return f"extra loss terms ({', '.join(map(str, loss[EXTRA_TERMS]))})"
        for name, place, value in loss_leaves(loss):
            if _argument(args, name) != value:
                return f"a loss whose {place} is {value!r}"
    if isinstance(adapter, dict):
        if adapter.get("peft_type", "LORA") != "LORA" or adapter.get("use_dora"):
            return f"a {'DoRA' if adapter.get('use_dora') else adapter.get('peft_type')} adapter"
        for name, field in LORA_KEYS.items():
            if adapter.get(field) is not None and adapter[field] != _argument(args, name):
                return f"a LoRA adapter whose {field} is {adapter[field]!r}"
        modules = _argument(args, "lora_target_modules")  # none: the architecture's, which the adapter records
        if modules is not None and _modules(modules) != _modules(adapter.get("target_modules")):
            return f"a LoRA adapter on {adapter.get('target_modules')!r}"
    return None


def given_paths(args: dict[str, Any]) -> list[list[str]]:
    """``[argument, value as the command gives it]`` for each file or folder argument other than ``dataset_path``
    (:data:`~biohicl.training.run_settings.PATH_ARGS`: ``mesh_path``, ``deepspeed``, ``fsdp_config``) the arguments
    set, and ``eval_tasks`` where a task names a local path: the uploaded arguments hold them by name only
    (:func:`~biohicl.hub.run_sources.path_name`), so the card's command gives each, as it gives the dataset."""
    given = []
    for name in ("mesh_path", *sorted(PATH_ARGS - {"dataset_path", "mesh_path"})):
        value = args.get(name)
        if isinstance(value, str) and value:
            given.append([name, shlex.quote(path_name(value))])
    tasks = args.get("eval_tasks")
    if isinstance(tasks, list) and tasks and without_machine_paths(tasks) != tasks:
        given.append(["eval_tasks", " ".join(shlex.quote(str(task)) for task in without_machine_paths(tasks))])
    return given


def software(summary: dict[str, Any], sources: list[str]) -> dict[str, str]:
    """``install`` (``pip install`` of biohicl at the commit that trained the run, where ``summary``'s
    ``source_git`` records one clean checkout and the run's code digests ``sources`` are one or none: a run resumed
    under other code has several, and its ``source_git`` is a list, or in an older summary the last code's only) and
    ``transformers`` (the version it trained with, where ``versions`` is one record)."""
    facts = {}
    git = summary.get("source_git")
    one_code = len(set(sources)) <= 1
    commit = git.get("commit") if isinstance(git, dict) and git.get("dirty") is False and one_code else None
    if isinstance(commit, str) and COMMIT.fullmatch(commit):
        facts["install"] = f'pip install "biohicl @ git+{REPOSITORY_URL}@{commit}"'
    versions = summary.get("versions")
    version = versions.get("transformers") if isinstance(versions, dict) else None
    if isinstance(version, str) and re.fullmatch(r"[0-9A-Za-z.+-]{1,40}", version):
        facts["transformers"] = version
    return facts


def reproduction(
    run_dir: Path,
    args: dict[str, Any],
    summary: dict[str, Any],
    base_model: str,
    loss: Any,
    adapter: Any,
    base_revision: str | None = None,
) -> dict[str, Any]:
    """The card's ``reproduction``: ``dataset_sha256`` and ``biohicl_source`` (the code digests that trained it) where
    the run's ``summary`` records them; with its arguments file (and no ``soup.json``), ``training_args`` (the file's
    name), ``dataset`` (the name of the ``dataset_path`` it trained on), ``base_model`` (the card's Hub id of the base,
    where the arguments name it otherwise, a local copy, or not at all: ``--base_model`` names it), ``base_revision``
    (the commit of the base it loaded, where the arguments give another revision or none: a retrain would load what
    the branch then holds), each quoted for the shell, ``paths`` (the other file arguments the command gives:
    :func:`given_paths`), ``install`` and ``transformers``
    (:func:`software`) and ``given_in_python`` (:func:`given_in_python`: what the command would not train again)."""
    facts: dict[str, Any] = {}
    digest = summary.get("dataset_sha256")
    if isinstance(digest, str) and DIGEST.fullmatch(digest):
        facts["dataset_sha256"] = digest
    sources = summary.get("biohicl_source")
    sources = [sources] if isinstance(sources, str) else sources if isinstance(sources, list) else []
    if sources := [source for source in sources if isinstance(source, str) and DIGEST.fullmatch(source)]:
        facts["biohicl_source"] = sources
    if not (run_dir / TRAINING_ARGS_FILE).is_file() or (run_dir / SOUP_RECORD_NAME).is_file():
        return facts
    facts["training_args"] = TRAINING_ARGS_FILE
    dataset = args.get("dataset_path")
    name = PureWindowsPath(dataset).name if isinstance(dataset, str) else ""  # either separator
    facts["dataset"] = shlex.quote(name) if name not in ("", "..") else "DATASET"
    if args.get("base_model") != base_model:
        facts["base_model"] = shlex.quote(base_model)
    if base_revision and args.get("base_revision") != base_revision:
        facts["base_revision"] = shlex.quote(base_revision)
    if paths := given_paths(args):
        facts["paths"] = paths
    facts |= software(summary, facts.get("biohicl_source", []))
    if (given := given_in_python(args, loss, adapter)) is not None:
        facts["given_in_python"] = given
    return facts
