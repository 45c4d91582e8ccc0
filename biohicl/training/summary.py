"""``training_summary.json``: what a run trained on, with what, over how many processes, and what it kept.

:func:`batch_scale` says how the batches were shared: the processes that trained (``world_size``), the sampler's
batches of an epoch (all processes together), each process's share of them (as accelerate's
``BatchSamplerShard`` splits them) and the documents behind one optimizer step. :func:`run_summary` is the whole
record :func:`~biohicl.training.run.train_biohicl` writes.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.objective import loss_config
from biohicl.training.selection import selection_summary


def batch_scale(
    sampler: torch.utils.data.Sampler, args: BioHiCLTrainingArguments, world_size: int, process_index: int = 0
) -> dict[str, int]:
    """``world_size``; ``batches_per_epoch``: the sampler's batches of ``per_device_train_batch_size`` documents in an
    epoch, all processes together; ``batches_per_epoch_per_process``: the ones process ``process_index`` runs (with
    accelerate's default ``even_batches`` a process short of one loops back to the epoch's first batches);
    ``documents_per_optimizer_step``: per-device batch × ``gradient_accumulation_steps`` × ``world_size`` (under
    ``split_batches`` the processes split each batch, so × 1), the documents one step trains on when batches are
    full."""
    from accelerate.data_loader import BatchSamplerShard

    split = bool(args.accelerator_config.split_batches)
    per_process = len(sampler)
    if world_size > 1:
        shard = BatchSamplerShard(
            sampler, world_size, process_index, split_batches=split, even_batches=args.accelerator_config.even_batches
        )
        per_process = len(shard)
    sharing = 1 if split else world_size
    return {
        "world_size": world_size,
        "batches_per_epoch": len(sampler),
        "batches_per_epoch_per_process": per_process,
        "documents_per_optimizer_step": args.per_device_train_batch_size * args.gradient_accumulation_steps * sharing,
    }


def run_summary(
    trainer: Any, model: Any, sampler: torch.utils.data.Sampler, data_stats: dict[str, Any], result: Any, start: float
) -> dict[str, Any]:
    """The ``training_summary.json`` record of a run ``trainer`` finished with ``result``: data and batch statistics
    (:func:`batch_scale`), the loss that trained (its class and ``get_config_dict()``, not the arguments'),
    ``model``'s parameter counts, steps, the model selection, and this process's runtime since ``start``."""
    trainable, total = model.trainable_parameters()
    return {
        "data": data_stats,
        "batch_sampler": type(sampler).__name__,
        **batch_scale(sampler, trainer.args, trainer.accelerator.num_processes, trainer.args.process_index),
        "loss": {"class": type(trainer.loss).__name__, **loss_config(trainer.loss)},  # what trained, not args
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        # model selection on dev data (None without metric_for_best_model): step 0 is the base weights
        **selection_summary(trainer.selection),
        "runtime_s": round(time.time() - start, 1),  # this process: after a resume, the steps since resuming
        "resumed_at_step": trainer.resumed_at_step,  # read before training: the checkpoint may be gone now
    }
