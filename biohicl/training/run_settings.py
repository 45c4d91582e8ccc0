"""Whether a checkpoint belongs to this run: a resume takes the checkpoint's optimizer, scheduler and RNG state, so a
learning rate, scheduler, seed, adapter or selection changed since would be recorded in the run folder but not
trained (or, for an adapter's size, fail mid-load); and ``--resume_from_checkpoint last`` picks the newest
checkpoint in ``output_dir`` whoever wrote it. So a resume under other settings than its checkpoint's
``biohicl_training_args.json``, and a fresh run into a folder holding another run's checkpoints, are refused in one
line, before the model loads. Torch-free: the demo compares its saved run with :data:`RUN_NEUTRAL_ARGS` too."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError

logger = logging.getLogger(__name__)

#: Training arguments that change neither what a run trains nor what it selects: where it writes, how it logs,
#: reports, saves or pushes, how the batches are loaded (workers), not which batches, and how much memory it takes
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
        "enable_jit_checkpoint",
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


def _resolved(value: str) -> Path:
    return (Path.cwd() / Path(value).expanduser()).resolve()


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
    return _resolved(saved) == _resolved(now)


def settings_differences(saved: Mapping[str, Any], args: Any) -> dict[str, tuple[Any, Any]]:
    """``{name: (saved, now)}`` for each argument ``args`` (a :class:`BioHiCLTrainingArguments`) gives other than
    ``saved`` (a ``biohicl_training_args.json``), by name (paths by the file or folder they name,
    :func:`same_setting`); :data:`RUN_NEUTRAL_ARGS` and an argument only one of them has (a version that added or
    dropped it) are not compared."""
    now = json.loads(args.to_json_string())
    return {
        name: (saved[name], now[name])
        for name in sorted(set(saved) & set(now) - RUN_NEUTRAL_ARGS)
        if not same_setting(name, saved[name], now[name])
    }


def shown_differences(differences: Mapping[str, tuple[Any, Any]], limit: int = 6) -> str:
    """``name old → new, ...`` (JSON values), the first ``limit`` of them and how many more."""
    shown = [f"{name} {json.dumps(old)} → {json.dumps(new)}" for name, (old, new) in list(differences.items())[:limit]]
    more = len(differences) - limit
    return ", ".join(shown) + (f" and {more} more ({', '.join(list(differences)[limit:])})" if more > 0 else "")


def _saved_arguments(checkpoint: Path) -> dict[str, Any] | None:
    from biohicl.jsonio import read_json
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    path = checkpoint / TRAINING_ARGS_JSON
    if not path.is_file():
        return None
    saved = read_json(path)
    return saved if isinstance(saved, dict) else None


def check_resume_settings(args: Any, checkpoint: str | Path) -> None:
    """A :class:`ConfigError` when ``checkpoint`` was trained with other settings than ``args`` give (a checkpoint
    past this run's ``max_steps`` among them); a checkpoint without its arguments file is resumed with a warning."""
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    checkpoint = Path(checkpoint)
    saved = _saved_arguments(checkpoint)
    if saved is None:
        logger.warning("%s has no %s: its settings are not compared with this run's", checkpoint, TRAINING_ARGS_JSON)
        return
    if differences := settings_differences(saved, args):
        raise ConfigError(
            f"resume_from_checkpoint: {checkpoint} was trained with other settings (checkpoint → this run: "
            f"{shown_differences(differences)}); resume with its settings (its biohicl_training_args.json), or train "
            "a new run in another --output_dir"
        )


#: What a fresh run into a folder of another run's checkpoints can do (:func:`check_fresh_run_folder`).
FRESH_RUN_REMEDY = (
    "continue that run with its settings and --resume_from_checkpoint last, train in another --output_dir, or remove "
    "its checkpoint-* folders"
)


def check_fresh_run_folder(args: Any, remedy: str = FRESH_RUN_REMEDY) -> None:
    """A :class:`ConfigError` when ``args.output_dir`` holds a complete checkpoint of a run with other settings:
    ``--resume_from_checkpoint last`` would later pick the newest checkpoint there, its or this run's. ``remedy``
    ends the message (the demo names its own options)."""
    from biohicl.training.checkpoint import complete_checkpoints

    for checkpoint in reversed(complete_checkpoints(args.output_dir or ".")):
        saved = _saved_arguments(checkpoint)
        if saved is not None and (differences := settings_differences(saved, args)):
            raise ConfigError(
                f"{args.output_dir} holds checkpoints of a run with other settings ({checkpoint.name} → this run: "
                f"{shown_differences(differences)}): {remedy}"
            )


def check_run_folder(args: Any, resume: str | Path | None) -> None:
    """:func:`check_resume_settings` for a resumed run (``resume``: its checkpoint), else
    :func:`check_fresh_run_folder`."""
    if resume is None:
        check_fresh_run_folder(args)
    else:
        check_resume_settings(args, resume)
