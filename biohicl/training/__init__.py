"""Training BioHiCL with ``transformers.Trainer``.

Modules: ``args`` (:class:`BioHiCLTrainingArguments`, the ``biohicl train`` options), ``objective`` (the loss the
arguments describe), ``trainer`` (:class:`BioHiCLTrainer`: loss components, the evaluator seam, step-0 model
selection), ``cached_batch`` (gradient caching for ``mini_batch_size``), ``selection`` (dev score, best step),
``checkpoint`` (trainable weights, resume), ``run_settings`` (a resume's settings against its checkpoint's),
``assembly`` (the collator and what trains), ``run`` (:func:`train_biohicl`: data, batches, model, trainer, run
folder) and ``curves`` (loss-curve PNGs). Names are imported on first use (torch, transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "BioHiCLTrainingArguments": "biohicl.training.args",
    "build_loss": "biohicl.training.objective",
    "BioHiCLTrainer": "biohicl.training.trainer",
    "check_evaluation": "biohicl.training.trainer",
    "dev_score": "biohicl.training.selection",
    "load_trainable_weights": "biohicl.training.checkpoint",
    "last_complete_checkpoint": "biohicl.training.checkpoint",
    "save_trainable_weights": "biohicl.training.checkpoint",
    "TrainingData": "biohicl.training.run",
    "build_batch_sampler": "biohicl.training.run",
    "build_model": "biohicl.training.run",
    "load_training_data": "biohicl.training.run",
    "train_biohicl": "biohicl.training.run",
    "plot_training_curves": "biohicl.training.curves",
}

if TYPE_CHECKING:
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.checkpoint import last_complete_checkpoint, load_trainable_weights, save_trainable_weights
    from biohicl.training.curves import plot_training_curves
    from biohicl.training.objective import build_loss
    from biohicl.training.run import (
        TrainingData,
        build_batch_sampler,
        build_model,
        load_training_data,
        train_biohicl,
    )
    from biohicl.training.selection import dev_score
    from biohicl.training.trainer import BioHiCLTrainer, check_evaluation

__all__ = [
    "BioHiCLTrainer",
    "BioHiCLTrainingArguments",
    "TrainingData",
    "build_batch_sampler",
    "build_loss",
    "build_model",
    "check_evaluation",
    "dev_score",
    "last_complete_checkpoint",
    "load_trainable_weights",
    "load_training_data",
    "plot_training_curves",
    "save_trainable_weights",
    "train_biohicl",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
