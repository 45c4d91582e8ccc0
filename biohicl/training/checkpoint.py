"""Checkpoint files of a training run: the trainable weights (for an exact resume), the step-0 weights (a model-
selection candidate), the JSON copy of the arguments, finding the checkpoint to resume from, and the mean training loss
of a run resumed from one.

A checkpoint folder ``checkpoint-N`` holds the model's own ``save_pretrained`` output plus
:data:`TRAINABLE_WEIGHTS_NAME` (every ``requires_grad`` parameter by name: the LoRA matrices, or every weight of a
full fine-tune) and ``trainer_state.json``; a checkpoint is complete when both of the last two were written, the
second whole (it is written last, in place: a save cut short may leave it empty).
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biohicl.errors import ConfigError, DataError
from biohicl.field_types import is_int
from biohicl.jsonio import read_json

logger = logging.getLogger(__name__)

#: Trainable weights of a checkpoint (LoRA matrices, or every weight for a full fine-tune), loaded on resume.
TRAINABLE_WEIGHTS_NAME = "trainable_weights.safetensors"
#: The trainable weights at step 0 (written when step 0 is a model-selection candidate), restored if nothing beats them.
INITIAL_WEIGHTS_NAME = "initial_trainable_weights.safetensors"
#: The training arguments as JSON (tokens redacted), in the run folder and in every checkpoint.
TRAINING_ARGS_JSON = "biohicl_training_args.json"


def save_trainable_weights(model: nn.Module, path: Path) -> None:
    """Write every ``requires_grad`` parameter (by its ``named_parameters`` name) to a safetensors file."""
    from safetensors.torch import save_file

    from biohicl.atomic import shareable_mode

    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path), metadata={"format": "pt"})
    os.chmod(path, shareable_mode())  # safetensors writes 0600 through a private temporary file


def load_trainable_weights(model: nn.Module, path: Path) -> None:
    """Load :func:`save_trainable_weights` output; every trainable parameter must be present."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError(f"{path}: not found (not a BioHiCL checkpoint?)")
    tensors = load_file(str(path))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(trainable - set(tensors)), sorted(set(tensors) - trainable)
    if missing or unexpected:
        if (other := _other_adapter(model, path)) is not None:
            raise ConfigError(f"{path}: {other}")
        raise ConfigError(f"{path}: does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    params = dict(model.named_parameters())
    if other := next((n for n in sorted(tensors) if tensors[n].shape != params[n].shape), None):  # another rank
        raise ConfigError(
            f"{path}: does not fit the model ({other} is {list(tensors[other].shape)} there, "
            f"{list(params[other].shape)} in the model): resume with the adapter settings it was trained with"
        )
    restore_trainable_state(model, tensors)


def _adapter_kind(config: Mapping[str, Any]) -> str:
    """``LORA``, ``LORA with use_dora``, ``IA3`` ...: what a peft config's ``peft_type`` and ``use_dora`` say."""
    kind = str(config.get("peft_type") or "none")
    return f"{kind} with use_dora" if config.get("use_dora") else kind


def _model_adapter_kind(model: nn.Module) -> str:
    """:func:`_adapter_kind` of the first peft config in ``model`` (``none`` for a model without adapters)."""
    for module in model.modules():
        configs = getattr(module, "peft_config", None)
        if isinstance(configs, Mapping) and configs:
            config = next(iter(configs.values()))
            kind = getattr(config, "peft_type", None)
            return _adapter_kind(
                {"peft_type": getattr(kind, "value", kind), "use_dora": getattr(config, "use_dora", 0)}
            )
    return "none"


def _other_adapter(model: nn.Module, path: Path) -> str | None:
    """When weights at ``path`` were trained with other adapters than ``model`` has, as the ``adapter_config.json``
    of their folder (or of the run folder above a ``checkpoint-N``) says: one line saying so; else None."""
    folders = [path.parent]
    if path.parent.name.removeprefix("checkpoint-").isdigit():
        folders.append(path.parent.parent)
    found = next((f / "adapter_config.json" for f in folders if (f / "adapter_config.json").is_file()), None)
    if found is None:
        return None
    try:
        saved = read_json(found)
    except DataError:
        return None
    if not isinstance(saved, dict) or (kind := _adapter_kind(saved)) == (mine := _model_adapter_kind(model)):
        return None
    where = "its" if found.parent == path.parent else "the run folder's"
    return (
        f"the checkpoint was trained with peft_type {kind} ({where} adapter_config.json), the model has {mine}; "
        "resume with the adapter it was trained with (the same peft_config=; on the command line, the same "
        "--full_finetune and --lora_* options)"
    )


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of every ``requires_grad`` parameter (bit-exact), by name."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def restore_trainable_state(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy ``tensors`` (by parameter name, e.g. :func:`trainable_state` output) into the model's parameters, on
    their device and in their dtype."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def numbered_checkpoints(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, complete or not, by step (another ``checkpoint-...`` name, a
    copy kept aside, is not one)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = child.name.removeprefix("checkpoint-")
        if child.is_dir() and step.isdigit():
            found.append((int(step), child))
    return [child for _, child in sorted(found)]


def complete_checkpoints(output_dir: str | Path, warn: bool = True) -> list[Path]:
    """The :func:`numbered_checkpoints` of ``output_dir`` whose ``trainer_state.json`` was written whole (a kill
    mid-save leaves none; a full disk or a kill mid-write, an empty or cut one: transformers writes it last, in place),
    by step. A cut one is skipped like a missing one, with one warning line naming it (once per process) unless not
    ``warn``."""
    found = []
    for child in numbered_checkpoints(output_dir):
        if _missing_files(child):
            continue
        if (reason := torn_state(child)) is None:
            found.append(child)
        elif warn and (path := str(child / "trainer_state.json")) not in _TORN_SAID:
            _TORN_SAID.add(path)
            logger.warning("%s: damaged or truncated (%s); %s is skipped as incomplete", path, reason, child.name)
    return found


_TORN_SAID: set[str] = set()  # the cut trainer_state.json files already warned about


def torn_state(checkpoint: Path) -> str | None:
    """Why ``checkpoint``'s ``trainer_state.json`` (there) is not a whole trainer state (``line 1: not valid JSON
    (...)``), or None."""
    path = checkpoint / "trainer_state.json"
    try:
        state = read_json(path)
    except DataError as err:
        return str(err).removeprefix(f"{path}: ")
    return None if isinstance(state, dict) else "not a JSON object"


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest of :func:`complete_checkpoints`."""
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def _missing_files(checkpoint: Path) -> list[str]:
    """The files a complete checkpoint has that ``checkpoint`` lacks (none: complete)."""
    return [name for name in ("trainer_state.json", TRAINABLE_WEIGHTS_NAME) if not (checkpoint / name).is_file()]


#: What transformers' Trainer reads from a checkpoint on resume besides the weights, when there (``torch.save`` files).
TRAINER_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt")


def damaged_file(path: Path) -> str | None:
    """Why ``path``, a checkpoint's safetensors or ``torch.save`` file, is not whole (truncated, overwritten), or
    None. Cheap and safe: the safetensors header and the length it announces, a torch file's zip directory (at its
    end, so a truncated file has none); nothing is unpickled."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt"):
                return None
        except SafetensorError as err:
            return f"not a whole safetensors file: {str(err).strip().splitlines()[-1]}"
    try:
        with zipfile.ZipFile(path):
            return None
    except zipfile.BadZipFile as err:
        return f"not a whole torch file: {err}"


def resume_files(checkpoint: Path, weights_only: bool = False) -> list[Path]:
    """The files of ``checkpoint`` a resume reads: the trainable weights and, unless ``weights_only`` (a checkpoint
    at the run's last step, nothing left to train), the optimizer, scheduler, scaler and RNG states it has."""
    weights = [checkpoint / TRAINABLE_WEIGHTS_NAME]
    if weights_only:
        return weights
    states = [checkpoint / name for name in TRAINER_STATE_FILES]
    return [*weights, *states, *sorted(checkpoint.glob("rng_state*.pth"))]


def check_checkpoint_files(checkpoint: str | os.PathLike[str], weights_only: bool = False) -> None:
    """A one-line :class:`DataError` naming the first damaged file of ``checkpoint`` a resume would read
    (:func:`resume_files`, :func:`damaged_file`), and the newest earlier complete checkpoint beside it whose files
    are whole to resume from instead, or a fresh run when there is none; before the Trainer loads any of them."""
    folder = Path(checkpoint)
    for path in resume_files(folder, weights_only):
        if path.is_file() and (reason := damaged_file(path)):
            raise DataError(f"damaged or truncated ({reason}); {_way_out(folder)}", path)


def _way_out(folder: Path) -> str:
    """What a resume from the damaged checkpoint ``folder`` can do instead: the newest earlier complete checkpoint
    beside it whose files are whole, or a fresh run."""
    step = folder.name.removeprefix("checkpoint-")
    earlier = [
        other
        for other in complete_checkpoints(folder.parent, warn=False)
        if step.isdigit() and int(other.name.removeprefix("checkpoint-")) < int(step)
    ]
    whole = next((c for c in reversed(earlier) if not any(map(_damaged, resume_files(c)))), None)
    if whole is None:
        return "no earlier checkpoint to resume from: start a fresh run (without --resume_from_checkpoint)"
    return f"resume from the earlier checkpoint {whole} (--resume_from_checkpoint {whole}) or start a fresh run"


def check_resume_point(checkpoint: str | os.PathLike[str], step: int, total: int) -> bool:
    """:func:`at_last_step` of a resume from ``checkpoint`` at ``step`` of ``total``, once the files that resume
    reads are whole (:func:`check_checkpoint_files`: the weights alone at the last step)."""
    finished = at_last_step(checkpoint, step, total)
    check_checkpoint_files(checkpoint, weights_only=finished)
    return finished


def _damaged(path: Path) -> bool:
    return path.is_file() and damaged_file(path) is not None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The ``global_step`` of a checkpoint's ``trainer_state.json`` (a DataError naming the file when it has none)."""
    path = Path(checkpoint) / "trainer_state.json"
    state = read_json(path, missing="trainer_state.json not found")
    step = state.get("global_step") if isinstance(state, dict) else None
    if not is_int(step) or step < 0:
        raise DataError(f"global_step: expected a step number, got {step!r}", path)
    return step


def at_last_step(checkpoint: str | Path, step: int, total: int) -> bool:
    """Whether a run of ``total`` optimizer steps resumed from ``checkpoint``, at ``step``, has nothing left to train
    (the checkpoint is its last step); a checkpoint past it is a one-line :class:`ConfigError`: its settings are the
    run's (:func:`~biohicl.training.run_settings.check_run_folder`), so its training data changed since. The check
    of ``BioHiCLTrainer.train`` and of ``biohicl train --dry_run``."""
    if step > total:
        raise ConfigError(
            f"resume_from_checkpoint: {checkpoint} is at step {step}, past this run's last step {total} (its "
            "training data changed?); train a new run in another --output_dir"
        )
    return step == total


def load_checkpoint_state(checkpoint: str | os.PathLike[str]) -> Any:
    """The ``TrainerState`` of a checkpoint's ``trainer_state.json``; a best checkpoint it records that no longer
    exists is dropped, with a warning."""
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    best = state.best_model_checkpoint
    if best is not None and not Path(best).is_dir():
        logger.warning("the best checkpoint %s recorded in %s no longer exists; ignoring it", best, checkpoint)
        state.best_model_checkpoint = None
    return state


def resolve_resume(value: str | bool | None, output_dir: str | Path) -> str | None:
    """``resume_from_checkpoint`` as a checkpoint folder, or None for a fresh start: ``true``/``last``/``yes``
    mean the newest complete checkpoint in ``output_dir`` (a fresh start, with a warning, when there is none); a
    folder must be a complete BioHiCL checkpoint (its ``trainer_state.json`` cut: a :class:`DataError` naming it and
    the newest whole earlier checkpoint, as :func:`check_checkpoint_files` does)."""
    if value is None or str(value).lower() in {"", "false", "no", "none"}:
        return None
    if str(value).lower() in {"true", "last", "yes"}:
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            logger.warning("resume_from_checkpoint: no complete checkpoint in %s; starting fresh", output_dir)
            return None
        return str(checkpoint)
    missing = _missing_files(Path(value))
    if missing:
        raise ConfigError(
            f"resume_from_checkpoint: {value} is not a complete BioHiCL checkpoint (missing {', '.join(missing)})"
        )
    if (reason := torn_state(Path(value))) is not None:  # a save cut short while writing it
        raise DataError(f"damaged or truncated ({reason}); {_way_out(Path(value))}", Path(value) / "trainer_state.json")
    return str(value)


def logged_train_loss(log_history: Sequence[Mapping[str, Any]]) -> float | None:
    """The mean training loss over the logged steps (each logged ``loss`` is the mean since the previous log)."""
    total, previous = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            total += float(entry["loss"]) * (int(entry["step"]) - previous)
            previous = int(entry["step"])
    return total / previous if previous else None


def whole_run_loss(
    log_history: Sequence[Mapping[str, Any]], resumed_at: int, segment_loss: float, global_step: int
) -> float:
    """The mean training loss of a run resumed at step ``resumed_at``: the steps logged up to it (the checkpoint's
    log history) and this process's ``segment_loss`` over the rest, weighted by their counts (transformers reports
    the second alone)."""
    before = [e for e in log_history if int(e.get("step", 0)) <= resumed_at]
    logged = max((int(e["step"]) for e in before if "loss" in e), default=0)
    steps = logged + global_step - resumed_at
    total = (logged_train_loss(before) or 0.0) * logged + segment_loss * (global_step - resumed_at)
    return total / steps if steps else segment_loss
