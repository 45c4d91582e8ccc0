"""Whether a checkpoint belongs to this run: a resume takes the checkpoint's optimizer, scheduler and RNG state, so a
learning rate, scheduler, seed, adapter or selection changed since would be recorded in the run folder but not
trained (or, for an adapter's size, fail mid-load); and ``--resume_from_checkpoint last`` picks the newest
checkpoint in ``output_dir`` whoever wrote it. So a resume under other settings than its checkpoint's
``biohicl_training_args.json``, or under another objective than the one its ``trainer_state.json`` keeps (a loss
given as ``train_biohicl(loss=...)``, its extra terms, is no argument: :data:`OBJECTIVE_RECORD`) or on other data
than its checkpoint's (:mod:`~biohicl.training.resume_inputs`), and a fresh run into a folder holding another run's
checkpoints, are refused in one line, before the model loads. Torch-free: the
demo compares its saved run with :data:`RUN_NEUTRAL_ARGS` too. A run without dev evaluation, or one that evaluates
without ``load_best_model_at_end``, is not refused, but keeps its last step: :func:`dev_selection_notice` says so in
one warning line, logged before its first step, once its inputs are read and good."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError
from biohicl.training.loss_record import EXTRA_TERMS
from biohicl.training.resume_inputs import checkpoint_json

logger = logging.getLogger(__name__)

#: Training arguments that change neither what a run trains nor what it selects: where it writes, how it logs,
#: reports or saves (the hub options too: a run refuses a push, ``arg_checks.check_hub_values``, but a checkpoint
#: written before may record one), how the batches are loaded (workers), not which batches, and how much memory it takes
#: (the evaluation's batch size, on which the metrics do not depend; activation checkpointing, which recomputes the
#: same activations in the backward pass, its dropout masks with the RNG state saved; emptying the CUDA cache), so a
#: run that ran out of memory resumes with less.
RUN_NEUTRAL_ARGS = frozenset(
    {
        "output_dir",
        "resume_from_checkpoint",
        "disable_tqdm",
        "report_to",
        "eval_cache_dir",
        "run_name",
        "project",
        "trackio_space_id",
        "trackio_bucket_id",
        "trackio_static_space_id",
        "logging_dir",
        "logging_strategy",
        "logging_steps",
        "logging_first_step",
        "logging_nan_inf_filter",
        "log_on_each_node",
        "log_level",
        "log_level_replica",
        "include_num_input_tokens_seen",
        "skip_memory_metrics",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "save_on_each_node",
        "save_only_model",
        "push_to_hub",
        "hub_token",
        "hub_private_repo",
        "hub_model_id",
        "hub_strategy",
        "hub_always_push",
        "hub_revision",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "dataloader_multiprocessing_context",
        "local_rank",
        "ddp_timeout",
        "do_train",
        "do_eval",
        "do_predict",
        "per_device_eval_batch_size",
        "eval_accumulation_steps",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "torch_empty_cache_steps",
    }
)


#: Training arguments that name a file or folder: the same one written another way (``tiny`` and ``./tiny``, a
#: relative folder and its absolute path, as ``--output_dir "$PWD/study"`` gives a study's dataset) is the same setting.
#: ``base_model`` (a folder or a Hub id) is compared by :func:`~biohicl.models.base_identity.same_base`.
PATH_ARGS = frozenset({"dataset_path", "mesh_path", "deepspeed", "fsdp_config"})

#: The ``trainer_state.json`` entry (of ``stateful_callbacks``) in which each checkpoint keeps the objective of its
#: run (:class:`~biohicl.training.summary.ObjectiveRecord`: the loss's class and ``get_config_dict()``).
OBJECTIVE_RECORD = "ObjectiveRecord"


class _Absent:
    """A setting one side of a comparison does not have (an extra term added or dropped)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def same_setting(name: str, saved: Any, now: Any) -> bool:
    """Whether ``saved`` and ``now`` (two JSON values of the training argument ``name``) are the same setting: equal,
    or, for a path (:data:`PATH_ARGS`, ``base_model``), naming the same file or folder. A relative path recorded in a
    checkpoint was relative to the working directory of the run that saved it, which is not recorded: it is resolved
    against this run's working directory (a resume is the same command run again from the same place; one run from
    elsewhere is compared as if from here)."""
    if saved == now:
        return True
    if name == "base_model":
        from biohicl.models.base_identity import same_base

        return same_base(saved, now)
    if name not in PATH_ARGS or not isinstance(saved, str) or not isinstance(now, str) or not saved or not now:
        return False
    from biohicl.data.files import resolved_path  # the data layer loads scipy: importing this module loads none

    return resolved_path(saved) == resolved_path(now)


def predated_default(arguments_class: type, name: str) -> Any:
    """What a run saved before biohicl's argument ``name`` existed trained with: its default (as JSON), for an argument
    ``arguments_class`` (:class:`BioHiCLTrainingArguments`, or a subclass) or a class it derives from outside
    transformers declares, whose default keeps what earlier versions did (``contrastive_mean``'s ``positives``);
    :data:`ABSENT` for one transformers declares (a transformers version's) or one without a plain default, which is
    not compared."""
    declaring = (klass for klass in arguments_class.__mro__ if not klass.__module__.startswith("transformers"))
    if not any(name in vars(klass).get("__annotations__", {}) for klass in declaring):
        return ABSENT
    declared = arguments_class.__dataclass_fields__.get(name)
    if declared is None or not declared.init:
        return ABSENT
    if declared.default is not MISSING:
        default = declared.default
    elif declared.default_factory is not MISSING:
        default = declared.default_factory()
    else:
        return ABSENT
    try:
        return json.loads(json.dumps(getattr(default, "value", default)))
    except (TypeError, ValueError):
        return ABSENT


def settings_differences(saved: Mapping[str, Any], args: Any) -> dict[str, tuple[Any, Any]]:
    """``{name: (saved, now)}`` for each argument ``args`` (a :class:`BioHiCLTrainingArguments`) gives other than
    ``saved`` (a ``biohicl_training_args.json``), by name (paths by the file or folder they name,
    :func:`same_setting`); :data:`RUN_NEUTRAL_ARGS` are not compared. An argument ``saved`` predates is compared with
    the default earlier versions trained with (:func:`predated_default`), one only ``saved`` has (a version that
    dropped it) is not."""
    now = json.loads(args.to_json_string())
    recorded = {name: saved.get(name, predated_default(type(args), name)) for name in now}
    return {
        name: (recorded[name], now[name])
        for name in sorted(set(now) - RUN_NEUTRAL_ARGS)
        if recorded[name] is not ABSENT and not same_setting(name, recorded[name], now[name])
    }


def _same_value(saved: Any, now: Any) -> bool:
    """Whether two JSON values are equal, a NaN equal to a NaN (a term's config recorded twice holds two)."""
    if isinstance(saved, float) and isinstance(now, float) and math.isnan(saved) and math.isnan(now):
        return True
    if isinstance(saved, list) and isinstance(now, list):
        return len(saved) == len(now) and all(map(_same_value, saved, now))
    if isinstance(saved, dict) and isinstance(now, dict):
        return saved.keys() == now.keys() and all(_same_value(saved[key], now[key]) for key in saved)
    return saved == now


#: Objective settings a loss records only away from their default, by key path: a record without one had it.
RECORDED_UNLESS_DEFAULT = {"loss.contrastive.mean": "positives"}
RECORDED_KEYS = {path.rpartition(".")[0]: {path.rpartition(".")[2]} for path in RECORDED_UNLESS_DEFAULT}


def objective_differences(saved: Any, now: Any, name: str = "loss") -> dict[str, tuple[Any, Any]]:
    """``{name.key...: (saved, now)}`` for each value of ``now`` (a run's objective, as
    :func:`~biohicl.training.objective.objective_record` gives it) other than in ``saved`` (a checkpoint's), by key
    path (``loss.extra_terms.margin.weight``). An extra term one side lacks is a difference (:data:`ABSENT` there;
    no ``extra_terms`` is none), a :data:`RECORDED_UNLESS_DEFAULT` setting one lacks is its default; any other key
    only one side has is not compared (a version that added or dropped it), nor a term's ``citation``."""
    if not (isinstance(saved, dict) and isinstance(now, dict)):
        return {} if _same_value(saved, now) else {name: (saved, now)}
    every = name.endswith(f".{EXTRA_TERMS}")  # its keys are the terms
    either = set(saved) | set(now)
    keys = either if every else set(saved) & set(now) | {EXTRA_TERMS} & either | RECORDED_KEYS.get(name, set()) & either
    keys.discard("citation")  # what a card cites, not what trains
    found: dict[str, tuple[Any, Any]] = {}
    for key in sorted(keys):
        absent = {} if key == EXTRA_TERMS and not every else RECORDED_UNLESS_DEFAULT.get(f"{name}.{key}", ABSENT)
        found |= objective_differences(saved.get(key, absent), now.get(key, absent), f"{name}.{key}")
    return found


def _shown(value: Any) -> str:
    return repr(value) if value is ABSENT else json.dumps(value)


def shown_differences(differences: Mapping[str, tuple[Any, Any]], limit: int = 6) -> str:
    """``name old → new, ...`` (JSON values), the first ``limit`` of them and how many more."""
    shown = [f"{name} {_shown(old)} → {_shown(new)}" for name, (old, new) in list(differences.items())[:limit]]
    more = len(differences) - limit
    return ", ".join(shown) + (f" and {more} more ({', '.join(list(differences)[limit:])})" if more > 0 else "")


def _saved_arguments(checkpoint: Path) -> dict[str, Any] | None:
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    return checkpoint_json(checkpoint, TRAINING_ARGS_JSON)


def saved_objective(checkpoint: Path) -> dict[str, Any] | None:
    """The objective ``checkpoint``'s ``trainer_state.json`` keeps (:data:`OBJECTIVE_RECORD`), or None for a
    checkpoint that keeps none (written by other code, or by ``BioHiCLTrainer`` used directly)."""
    state = checkpoint_json(checkpoint, "trainer_state.json")
    entry = (state.get("stateful_callbacks") or {}).get(OBJECTIVE_RECORD) if state is not None else None
    config = (entry.get("attributes") or {}).get("config") if isinstance(entry, dict) else None
    return config if isinstance(config, dict) else None


def check_resume_objective(objective: Mapping[str, Any], checkpoint: str | Path) -> None:
    """A :class:`ConfigError` when ``checkpoint`` was trained with another objective than ``objective`` (this run's
    :func:`~biohicl.training.objective.objective_record`), naming what changed. A checkpoint that keeps none (of
    code before the record, where the arguments, compared, were the objective unless a ``loss=`` was given) is
    resumed, saying so at info level."""
    checkpoint = Path(checkpoint)
    saved = saved_objective(checkpoint)
    if saved is None:
        logger.info("%s keeps no record of its objective: its loss is not compared with this run's", checkpoint)
    elif differences := objective_differences(saved, dict(objective)):
        raise ConfigError(
            f"resume_from_checkpoint: {checkpoint} was trained with another objective (checkpoint → this run: "
            f"{shown_differences(differences)}); resume with the loss it was trained with, or train a new run in "
            "another --output_dir"
        )


def check_resume_settings(args: Any, checkpoint: str | Path, objective: Mapping[str, Any] | None = None) -> None:
    """A :class:`ConfigError` when ``checkpoint`` was trained with other settings than ``args`` give (a checkpoint
    past this run's ``max_steps`` among them), on other data than ``args.dataset_path`` holds now (its files' sha256,
    :func:`~biohicl.training.resume_inputs.check_resume_data`: a dataset rebuilt in place keeps its path), or, given
    this run's ``objective``, with another one (:func:`check_resume_objective`); a checkpoint without its arguments
    file is resumed with a warning, its data and objective still compared. Its base, compared by signature, is
    checked once loaded (:func:`~biohicl.training.resume_inputs.check_resume_base`)."""
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON
    from biohicl.training.resume_inputs import check_resume_data

    checkpoint = Path(checkpoint)
    saved = _saved_arguments(checkpoint)
    if saved is None:
        logger.warning("%s has no %s: its settings are not compared with this run's", checkpoint, TRAINING_ARGS_JSON)
    elif differences := settings_differences(saved, args):
        raise ConfigError(
            f"resume_from_checkpoint: {checkpoint} was trained with other settings (checkpoint → this run: "
            f"{shown_differences(differences)}); resume with its settings (its biohicl_training_args.json), or train "
            "a new run in another --output_dir"
        )
    check_resume_data(args, checkpoint)
    if objective is not None:
        check_resume_objective(objective, checkpoint)


#: What a fresh run into a folder of another run's checkpoints can do (:func:`check_fresh_run_folder`).
FRESH_RUN_REMEDY = (
    "continue that run with its settings and --resume_from_checkpoint last, train in another --output_dir, or remove "
    "its checkpoint-* folders"
)


def check_fresh_run_folder(
    args: Any, remedy: str = FRESH_RUN_REMEDY, objective: Mapping[str, Any] | None = None
) -> None:
    """A :class:`ConfigError` when ``args.output_dir`` holds a complete checkpoint of a run with other settings, or
    (given this run's ``objective``) another objective its checkpoint keeps: ``--resume_from_checkpoint last`` would
    later pick the newest checkpoint there, its or this run's. ``remedy`` ends the message: :data:`FRESH_RUN_REMEDY`
    names ``biohicl train``'s options; the demo passes its own, and notebook 02 its parameters and run folder."""
    from biohicl.training.checkpoint import complete_checkpoints

    for checkpoint in reversed(complete_checkpoints(args.output_dir or ".")):
        saved = _saved_arguments(checkpoint)
        if saved is not None and (differences := settings_differences(saved, args)):
            raise ConfigError(
                f"{args.output_dir} holds checkpoints of a run with other settings ({checkpoint.name} → this run: "
                f"{shown_differences(differences)}): {remedy}"
            )
        kept = saved_objective(checkpoint) if objective is not None else None
        if kept is not None and (differences := objective_differences(kept, dict(objective))):
            raise ConfigError(
                f"{args.output_dir} holds checkpoints of a run with another objective ({checkpoint.name} → this run: "
                f"{shown_differences(differences)}): {remedy}"
            )


def check_run_folder(args: Any, resume: str | Path | None, objective: Mapping[str, Any] | None = None) -> None:
    """:func:`check_resume_settings` for a resumed run (``resume``: its checkpoint), else
    :func:`check_fresh_run_folder`; given the run's ``objective``
    (:func:`~biohicl.training.objective.objective_record`), the checkpoints' are compared with it too."""
    if resume is None:
        check_fresh_run_folder(args, objective=objective)
    else:
        check_resume_settings(args, resume, objective)


def command_line_option(name: str, value: Any) -> str:
    """One ``biohicl train`` option as typed: ``--name value``, a list's items after it, a true flag alone."""
    if value is True:
        return f"--{name}"
    return " ".join([f"--{name}", *map(str, value if isinstance(value, list) else [value])])


@dataclass(frozen=True)
class SettingsSpelling:
    """How a run's notice names its settings where its user gives them: ``biohicl train``'s options
    (:data:`COMMAND_LINE`), or a study config's keys (:data:`biohicl.study.config.STUDY_SETTINGS`)."""

    option: Callable[[str, Any], str]  # a setting and its value as written
    flag: str = "--"  # before a setting's name
    scope: str = ""  # after a missing one's: " in the study config"
    separator: str = " "
    add: str = "add"
    place: str = ""  # where the settings go: " in the study config's training"
    guide: str = 'docs/training.md, "Model selection on dev data"'
    alternative: str = ", or train with --config configs/biohicl_minilm.yaml, the registry's recipe"


COMMAND_LINE = SettingsSpelling(command_line_option)

#: The metric a notice names for a run whose dev tasks it cannot name one of (training does not load the evaluation).
METRIC = "METRIC"
#: What a run without dev evaluation adds to select on dev, step 0 a candidate (the registry recipe's dev task).
DEV_SELECTION_SETTINGS: dict[str, Any] = {
    "eval_tasks": ["pubmedqa:dev"], "eval_strategy": "steps", "eval_steps": 50, "save_steps": 50,
    "load_best_model_at_end": True, "metric_for_best_model": "pubmedqa-dev_recall@1",
}  # fmt: skip


def option_value(option: Any) -> Any:
    """A strategy option's value: transformers turns ``eval_strategy``, ``save_strategy`` ... into enums."""
    return getattr(option, "value", option)


def selection_settings(args: Any) -> tuple[dict[str, Any], bool] | None:
    """What a run that keeps its last step adds to select a step on dev (step 0 a candidate), and whether that is an
    example (a dev task or a metric it may choose otherwise); None for a run that selects (it evaluates, and loads its
    best step: ``load_best_model_at_end``). One that evaluates adds ``load_best_model_at_end``, its
    ``metric_for_best_model`` (else one for example) and, where its saves are not on its evaluations' steps, those
    saves: a best step not saved could not be loaded."""
    strategy = option_value(args.eval_strategy)
    if strategy == "no":
        return dict(DEV_SELECTION_SETTINGS), True
    if args.load_best_model_at_end:
        return None
    saves, settings = option_value(args.save_strategy), {}
    if saves not in (strategy, "best"):
        settings["save_strategy"] = strategy
    if strategy == "steps" and saves != "best" and (saves != "steps" or args.save_steps != args.eval_steps):
        every = args.eval_steps
        settings["save_steps"] = int(every) if isinstance(every, float) and every.is_integer() else every  # not 1.0
    metric = args.metric_for_best_model
    if not metric:  # the recipe's dev metric where the run evaluates its task, else a name for one of its own
        dev_task = DEV_SELECTION_SETTINGS["eval_tasks"][0] in (getattr(args, "eval_tasks", None) or ())
        metric = DEV_SELECTION_SETTINGS["metric_for_best_model"] if dev_task else METRIC
    settings.update(load_best_model_at_end=True, metric_for_best_model=metric)
    return settings, not args.metric_for_best_model


def last_step_notice(args: Any, spelling: SettingsSpelling = COMMAND_LINE) -> str | None:
    """That the run ``args`` describe keeps its last step whatever it scores, and the settings that select on dev
    instead (:func:`selection_settings`) as ``spelling`` names them, those it may choose otherwise said to be an
    example (its metric, where it evaluates, one of its own ``eval_tasks``'); None for a run that selects."""
    if (selection := selection_settings(args)) is None:
        return None
    settings, example = selection
    shown = spelling.separator.join(spelling.option(name, value) for name, value in settings.items())
    if settings.get("metric_for_best_model") == METRIC:
        guide = f"{METRIC}: a metric of its {spelling.flag}eval_tasks, as its evaluation logs it; {spelling.guide}"
    elif example and option_value(args.eval_strategy) != "no":
        guide = f"or another metric of its {spelling.flag}eval_tasks; {spelling.guide}"
    else:
        guide = spelling.guide
    return (
        "the run keeps its last step whatever it scores; to select a step on dev data, step 0 (the base) a candidate, "
        f"{spelling.add} {'e.g. ' if example else ''}{shown}{spelling.place} ({guide}){spelling.alternative}"
    )


def dev_selection_notice(args: Any, spelling: SettingsSpelling = COMMAND_LINE) -> str | None:
    """The one warning line of a run that keeps its last step (None for one that selects): without dev evaluation
    (``biohicl train`` without ``--eval_tasks``), or evaluating without ``load_best_model_at_end``; logged by
    ``train_biohicl`` before the first step, once the inputs are good."""
    if (kept := last_step_notice(args, spelling)) is None:
        return None
    if option_value(args.eval_strategy) == "no":
        return f"no dev evaluation (no {spelling.flag}eval_tasks{spelling.scope}), so {kept}"
    return f"dev evaluation without {spelling.flag}load_best_model_at_end{spelling.scope}, so {kept}"
