"""Whether a finished run in the study folder is the run the config describes now, beyond its training settings
(:func:`~biohicl.study.config.changed_settings`): evaluated at the config's evaluation settings, and trained on the
config's dataset. A run that is not is refused by name, never skipped as done and reported as the config's.

A dataset is identified by its build summary (``summary.json``: documents, pairs, splits, ...), not by its path: a
study folder copied or moved, or committed records read on another machine, keep their runs. The path a run saved
(``dataset_path``) is only compared when that folder exists here; otherwise the run's own count of the documents it
read (``training_summary.json`` ``data.documents_in_dataset``) is compared with the study's dataset's. Before the
study's dataset is built, a run whose build here records other build settings than the config asks for is refused
at once (:func:`check_build`), not after the build. The study's dataset folder itself, already built, is refused
when its summary shows it is not the config's build (:func:`check_reused_dataset`): changing ``dataset.limit``,
``top_k`` or the inputs while keeping its path must not silently keep the old build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biohicl.data.storage import read_build_summary
from biohicl.errors import ConfigError
from biohicl.field_types import int_or_none
from biohicl.jsonio import read_json
from biohicl.study.config import ModelSpec, ReproduceConfig, run_settings

#: What identifies a built dataset in its ``summary.json`` (compared where both summaries give it).
DATASET_IDENTITY = ("documents", "pairs", "top_k", "seed", "sources", "splits", "pairs_by_split", "mesh_version")
#: The end of a refusal of a run trained on another dataset: what the user can do.
REMEDY = "restore the config, or move the run away to {what} it again"
#: The end of a refusal of a run evaluated at other settings: only its record goes (``plan_study`` then evaluates it).
EVAL_REMEDY = "restore the config, or move its eval.json away to evaluate it again"


def evaluation_settings(config: ReproduceConfig, model: ModelSpec, variant: str | None) -> dict[str, Any]:
    """What the study evaluates a run of ``model``'s ``variant`` (None: the untrained base) at, as its ``eval.json``
    ``settings`` records it: ``dtype``, ``max_length`` (``eval_max_length``, else the length the run encodes at:
    the base's ``max_length``, a trained run's training length) and the prompts. Not ``limit_queries``, which
    :func:`check_evaluated` compares by the items each task scored (a cap a task was smaller than left it whole), nor
    the batch size and device, which may differ."""
    encodes = {
        "max_length": model.max_length,
        "query_prompt": model.query_prompt,
        "document_prompt": model.document_prompt,
    }
    if variant is not None:  # a trained run encodes with what it trained with (a variant may set its own)
        encodes = {key: run_settings(config, model, variant).get(key, value) for key, value in encodes.items()}
    if model.eval_max_length:
        encodes["max_length"] = model.eval_max_length
    return {"dtype": config.eval_dtype, **encodes}


def check_evaluated(
    config: ReproduceConfig, model: ModelSpec, variant: str | None, folder: Path, record: Mapping[str, Any]
) -> None:
    """A :class:`ConfigError` naming ``folder`` and the field when ``record`` (the run's ``eval.json``), or an
    evaluation added to it later (``added[i]``), was evaluated at other settings than :func:`evaluation_settings`.
    A setting a record does not give (written before it was recorded) is not compared; a ``max_length`` above the
    base's position embeddings is recorded as the encoder used it, capped (:func:`position_limit`). Another
    ``limit_queries`` than the config's is refused too, unless each task that part of the record holds scored as
    many items as the config's cap would (:func:`_same_items`)."""
    expected = evaluation_settings(config, model, variant)
    for where, settings, tasks in _parts(record):
        if not isinstance(settings, Mapping):
            continue
        for name, value in expected.items():
            if name in settings and settings[name] != value and not _capped(name, settings[name], value, model):
                _refuse_evaluated(folder, model, variant, f"{where}.{name} {settings[name]!r} → {value!r}")
        cap = settings.get("limit_queries", config.limit_queries)
        if cap != config.limit_queries and not _same_items(record, tasks, cap, config.limit_queries):
            _refuse_evaluated(folder, model, variant, f"{where}.limit_queries {cap!r} → {config.limit_queries!r}")


def _refuse_evaluated(folder: Path, model: ModelSpec, variant: str | None, shown: str) -> None:
    raise ConfigError(
        f"{folder}: evaluated with other settings than the config gives {model.name}/{variant or 'base'} now "
        f"(eval.json {shown}); {EVAL_REMEDY}" + (" (the training is kept)" if variant is not None else "")
    )


def _parts(record: Mapping[str, Any]) -> list[tuple[str, Any, list[str] | None]]:
    """``(where, settings, tasks)`` for the record's own ``settings`` and each ``added[i].settings``: ``tasks`` the
    task results of ``record["tasks"]`` that part scored (a task evaluated again later belongs to the later part),
    None where that is not known (an ``added`` entry that does not list its tasks)."""
    added = [entry for entry in record.get("added") or [] if isinstance(entry, Mapping)]
    parts: list[tuple[str, Any, list[str] | None]] = []
    later: set[str] | None = set()
    for i in reversed(range(len(added))):
        listed = added[i].get("tasks")
        known = later is not None and isinstance(listed, list)
        parts.append(
            (f"added[{i}].settings", added[i].get("settings"), [t for t in listed if t not in later] if known else None)
        )
        later = later | set(listed) if known else None
    own = [task for task in record.get("tasks") or {} if task not in later] if later is not None else None
    return [("settings", record.get("settings"), own), *reversed(parts)]


def _same_items(record: Mapping[str, Any], tasks: list[str] | None, cap: Any, wanted: int | None) -> bool:
    """Whether each of ``tasks`` (of ``record["tasks"]``), scored under ``cap``, scored the items the config's cap
    ``wanted`` would: a task that ignores the cap (BIOSSES), or one that scored its whole set (no cap, or fewer
    items than the cap) no larger than ``wanted``. The items are what the cap limits: a task's ``num_queries``, the
    SimL agreement's ``num_documents`` (its ``num_queries`` counts their pairs). False when ``tasks`` is not known."""
    from biohicl.evaluation.results import AGREEMENT_TASK, UNCAPPED_TASKS

    if tasks is None:
        return False
    for task in tasks:
        if task in UNCAPPED_TASKS:
            continue
        entry = (record.get("tasks") or {}).get(task)
        key = "num_documents" if task == AGREEMENT_TASK else "num_queries"
        count = entry.get(key) if isinstance(entry, Mapping) else None
        if not isinstance(count, int) or isinstance(count, bool) or (key == "num_documents" and count < 1):
            return False  # not recorded (an agreement's documents default to 0 in a record that lacks them)
        whole = cap is None or (isinstance(cap, int) and count < cap)
        if not whole or (wanted is not None and count > wanted):
            return False
    return True


def position_limit(model: ModelSpec) -> int | None:
    """The most tokens the base encodes (:func:`~biohicl.models.positions.usable_positions` of its ``config.json``:
    ``max_position_embeddings``, less ``padding_idx + 1`` for RoBERTa-style models), the cap ``BioHiCL.from_base``
    puts on a longer ``max_length``: a study whose ``max_length`` is above it trains, saves and evaluates at the cap.
    None when the base is not on this machine or does not say."""
    from biohicl.models.positions import base_usable_positions

    return base_usable_positions(model.model)


def evaluation_length(model: ModelSpec) -> int | None:
    """``eval_max_length`` as the encoder uses it: capped at the base's :func:`position_limit`, as
    ``BioHiCL.from_base`` caps a longer ``max_length`` (a longer one would not fit its position embeddings); None
    when the config sets none."""
    limit = position_limit(model) if model.eval_max_length else None
    return min(model.eval_max_length, limit) if model.eval_max_length and limit else model.eval_max_length


def _capped(name: str, recorded: Any, expected: Any, model: ModelSpec) -> bool:
    """Whether ``recorded`` is the ``max_length`` ``expected`` as the encoder capped it at the base's positions."""
    if name != "max_length" or not isinstance(recorded, int) or not isinstance(expected, int) or recorded >= expected:
        return False
    return position_limit(model) == recorded


def check_dataset(config: ReproduceConfig, folder: Path, saved_args: Mapping[str, Any] | None) -> None:
    """A :class:`ConfigError` naming ``folder`` and the field when the run in it trained on another dataset than
    the config's (see the module docstring for how datasets are compared)."""
    study = _study_dataset(config)
    own = dataset_summary(study)
    saved = (saved_args or {}).get("dataset_path")
    if isinstance(saved, str) and saved and Path(saved).is_dir():
        if study.is_dir() and Path(saved).resolve() == study.resolve():
            return
        theirs = dataset_summary(Path(saved))
        differ = _differences(theirs, own) if theirs is not None and own is not None else None
        if differ == []:
            return  # a copy of the same build
        shown = f"dataset_path {saved!r} → {str(study)!r}" + (f", {', '.join(differ[:3])}" if differ else "")
        raise ConfigError(f"{folder}: trained on another dataset than the config's ({shown}); {_remedy()}")
    documents = _documents_read(folder)
    if own is not None and documents is not None and own.get("documents") not in (None, documents):
        raise ConfigError(
            f"{folder}: trained on another dataset than the config's (training_summary.json "
            f"data.documents_in_dataset {documents!r} → {own['documents']!r} in {study}); {_remedy()}"
        )


def check_build(config: ReproduceConfig, folder: Path, saved_args: Mapping[str, Any] | None) -> None:
    """Before the config's dataset is built (minutes): a :class:`ConfigError` naming ``folder`` when the run in it
    trained on a build here (its saved ``dataset_path``) whose summary shows that the config's build cannot be the
    same (:func:`build_differences`), as :func:`check_dataset` would refuse it once built. Nothing is refused that
    the built dataset could still match (the same settings at another path)."""
    study = _study_dataset(config)
    saved = (saved_args or {}).get("dataset_path")
    if dataset_summary(study) is not None or not isinstance(saved, str) or not saved or not Path(saved).is_dir():
        return
    theirs = dataset_summary(Path(saved))
    if theirs is not None and (differ := build_differences(config, theirs)):
        shown = f"dataset_path {saved!r} → {str(study)!r}, {', '.join(differ[:3])}"
        raise ConfigError(f"{folder}: trained on another dataset than the config's ({shown}); {_remedy()}")


def build_differences(config: ReproduceConfig, summary: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each build setting of the config's ``dataset`` that a built dataset's ``summary``
    shows to be another (:func:`_build_differences`)."""
    return [shown for shown, _ in _build_differences(config, summary)]


def _build_differences(config: ReproduceConfig, summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name old → new, the config setting that accepts the build)`` for each build setting of the config's
    ``dataset`` that ``summary`` shows to be another: ``top_k``, ``seed``; ``mix_label_kinds`` where it changes the
    build (the default inputs, or a build of more than one label kind); a ``limit`` below its ``documents``;
    ``exclude_test`` under a ``limit`` the build reached, test documents kept against it or excluded without it
    (the limit counts documents after the exclusion, so the train and dev splits differ); a source the config's
    ``inputs`` do not name (none is ``auto``); ``decontaminate`` (a decontamination record, or none). Not
    ``exclude_test`` otherwise: it keeps or drops the ``test`` split, which no run trains on (the committed studies
    trained on ``biohicl build-dataset``'s build, test split kept, under the study default ``exclude_test: true``).
    What a summary does not record (a higher ``limit``, the input files) is not compared."""
    spec = config.dataset
    kinds = summary.get("label_kinds")
    names = ["top_k", "seed"]
    if spec.inputs is None or not isinstance(kinds, Mapping) or len(kinds) > 1:
        names.append("mix_label_kinds")
    differ = [
        (f"{name} {summary[name]!r} → {getattr(spec, name)!r}", _setting(name, summary[name]))
        for name in names
        if name in summary and summary[name] != getattr(spec, name)
    ]
    documents = summary.get("documents")
    if spec.limit is not None and isinstance(documents, int) and documents > spec.limit:
        differ.append((f"documents {documents!r} → at most {spec.limit!r} (limit)", _setting("limit", documents)))
    limited = spec.limit is not None and isinstance(documents, int) and documents >= spec.limit  # the limit reached
    test = _test_documents(summary)
    if spec.exclude_test and limited and test:
        differ.append(
            (f"test documents {test!r} → 0 (exclude_test true, limit {spec.limit!r})", _setting("exclude_test", False))
        )
    excluded = summary.get("excluded_documents")
    if not spec.exclude_test and limited and isinstance(excluded, int) and excluded > 0:  # the mirror case
        differ.append(
            (
                f"excluded test documents {excluded!r} → 0 (exclude_test false, limit {spec.limit!r})",
                _setting("exclude_test", True),
            )
        )
    sources = summary.get("sources")
    named = [str(item.get("source")) for item in spec.inputs or () if isinstance(item, Mapping)]
    if spec.inputs is not None and "auto" not in named and isinstance(sources, Mapping) and set(sources) - set(named):
        differ.append(
            (
                f"sources {sorted(sources)!r} → {sorted(set(named))!r} (inputs)",
                f"dataset.inputs to the build's sources {sorted(sources)!r}",
            )
        )
    if "decontamination" in summary and bool(summary["decontamination"]) != spec.decontaminate:
        shown = {True: "on", False: "off"}
        differ.append(
            (
                f"decontamination {shown[not spec.decontaminate]} → {shown[spec.decontaminate]} "
                f"(decontaminate {str(spec.decontaminate).lower()})",
                _setting("decontaminate", not spec.decontaminate),
            )
        )
    return differ


def _setting(name: str, value: Any) -> str:
    """``dataset.<name>: <value>`` as the YAML config writes it (``true``, ``3``)."""
    return f"dataset.{name}: {json.dumps(value)}"


def _test_documents(summary: Mapping[str, Any]) -> int | None:
    """The documents a build kept in its ``test`` split (``test_documents``, else ``splits.test``)."""
    splits = summary.get("splits")
    count = summary.get("test_documents", splits.get("test") if isinstance(splits, Mapping) else None)
    return int_or_none(count)


def check_reused_dataset(config: ReproduceConfig) -> None:
    """A :class:`ConfigError` naming the study's dataset folder (``dataset.path``, else ``<output_dir>/dataset``)
    and the fields when it holds a build whose ``summary.json`` shows it is not the build the config's ``dataset``
    asks for (:func:`build_differences`): reused, it would be reported as the config's dataset, and so would every
    run trained on it. The message names the settings that would accept the build (a config that gives only
    ``dataset.path`` is compared with the dataset defaults, so the build's own settings are the fix, not a config
    restored). Nothing when the folder holds no build (or no summary)."""
    folder = _study_dataset(config)
    summary = dataset_summary(folder)
    differ = _build_differences(config, summary) if summary is not None else []
    if differ:
        shown = ", ".join(shown for shown, _ in differ[:3]) + (", …" if len(differ) > 3 else "")
        raise ConfigError(
            f"{folder}: a built dataset the config's dataset settings would not build (summary.json {shown}); to "
            f"reuse this build set {', '.join(fix for _, fix in differ)} in the config, or move the folder away to "
            "build it again"
        )


def dataset_summary(folder: Path) -> dict[str, Any] | None:
    """A built dataset's ``summary.json`` (None: no build there, or no summary; damaged, a one-line
    :class:`~biohicl.errors.DataError`: :func:`~biohicl.data.storage.read_build_summary`)."""
    if not ((folder / "documents").is_dir() and (folder / "pairs").is_dir()):
        return None
    return read_build_summary(folder)


def _differences(theirs: Mapping[str, Any], own: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each identity field both summaries give that differs."""
    return [
        f"{name} {theirs[name]!r} → {own[name]!r}"
        for name in DATASET_IDENTITY
        if name in theirs and name in own and theirs[name] != own[name]
    ]


def _documents_read(folder: Path) -> int | None:
    """How many documents the run's dataset held, as its ``training_summary.json`` recorded (None: not recorded)."""
    path = folder / "training_summary.json"  # plan.TRAINING_DONE_NAME, written when training finished
    summary = read_json(path) if path.is_file() else None
    data = summary.get("data") if isinstance(summary, dict) else None
    return int_or_none(data.get("documents_in_dataset") if isinstance(data, dict) else None)


def _study_dataset(config: ReproduceConfig) -> Path:
    """The study's dataset folder (``dataset.path``, else ``<output_dir>/dataset``)."""
    return Path(config.dataset.path) if config.dataset.path else Path(config.output_dir) / "dataset"


def _remedy() -> str:
    return REMEDY.format(what="train")
