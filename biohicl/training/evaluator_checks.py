"""What an evaluator is to the trainer (:data:`Evaluator`), its metrics as the trainer logs them
(:func:`metric_floats`), and the checks of an evaluation a run cannot do, made before any training
(:func:`check_evaluation`), which also says, in one warning line, when the run selects its step on held-out data
(:func:`~biohicl.training.selection_splits.held_out_notice`)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from biohicl.errors import ConfigError
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.selection import check_metric
from biohicl.training.selection_splits import held_out_notice

logger = logging.getLogger(__name__)

#: What an evaluator is: the model in, flat metrics out (``{"biosses_spearman": 0.81, ...}``, no ``eval_`` prefix).
Evaluator = Callable[[nn.Module], Mapping[str, float]]

#: The arguments whose held-out selection was said last: ``train_biohicl`` and the trainer it builds both check the
#: evaluation, and the run says it once.
_said: weakref.ReferenceType[Any] | None = None


def check_evaluation(args: BioHiCLTrainingArguments, evaluator: Evaluator | None) -> None:
    """Refuse, before any training, an evaluation the run cannot do: evaluation or selection metrics without an
    evaluator, evaluation tasks without an ``eval_strategy`` (they would never run), and (for an evaluator with
    ``metric_names()``) a selection metric it does not give. A run that selects on a task's held-out split (BIOSSES,
    PubMedQA's default test split, a BEIR test split) is not refused but warned, once per arguments object."""
    if args.eval_strategy == "no" and args.eval_tasks:
        raise ConfigError("eval_tasks: set --eval_strategy steps|epoch to evaluate them (without it none is run)")
    if args.eval_strategy != "no" and evaluator is None:
        if not args.eval_tasks:
            raise ConfigError("eval_strategy: evaluation during training needs --eval_tasks (e.g. pubmedqa:dev)")
        raise ConfigError(
            "eval_strategy: evaluation during training needs an evaluator: pass evaluator= (e.g. "
            "biohicl.evaluation.evaluator.evaluator_from_args(args), which runs --eval_tasks)"
        )
    if args.selection_metrics and evaluator is None:
        raise ConfigError("selection_metrics: needs --eval_tasks that produce those metrics")
    _check_metric_names(args, evaluator)
    _warn_held_out(args)


def refuse_evaluation_inputs(eval_dataset: Any = None, ignore_keys: Sequence[str] | None = None) -> None:
    """The trainer evaluates through its evaluator only: a dataset to score (``eval_dataset=``, to the trainer or
    ``evaluate``) or model-output keys to ignore (``ignore_keys=``, ``train(ignore_keys_for_eval=)``), which
    transformers' ``Trainer`` takes, are refused in one line rather than passed over."""
    if eval_dataset is not None:
        raise ConfigError(
            "eval_dataset: BioHiCLTrainer scores its evaluator's tasks, not a dataset given to it; to score other "
            "data, give evaluator= one that scores it (e.g. --eval_tasks with a BEIR folder or "
            "siml-agreement@<documents file>)"
        )
    if ignore_keys:
        raise ConfigError(
            "ignore_keys: BioHiCLTrainer.evaluate gathers no model outputs to leave out (its metrics are the "
            "evaluator's); leave a metric out in the evaluator"
        )


def _check_metric_names(args: BioHiCLTrainingArguments, evaluator: Evaluator | None) -> None:
    """The selection's metrics against those an evaluator with ``metric_names()`` gives."""
    metric_names = getattr(evaluator, "metric_names", None)
    if not callable(metric_names):
        return
    names = set(metric_names())
    for option in ("selection_metrics", "selection_guard"):
        for name in getattr(args, option):
            check_metric(option, name, names, key=name.removeprefix("eval_"))
    if args.selection_metric_key is not None:
        logged = {f"eval_{n}" for n in names} | ({"eval_dev_score"} if args.selection_metrics else set())
        check_metric("metric_for_best_model", args.selection_metric_key, logged)


def _warn_held_out(args: BioHiCLTrainingArguments) -> None:
    """:func:`~biohicl.training.selection_splits.held_out_notice` as one warning, not again for the same ``args``."""
    global _said
    if (notice := held_out_notice(args)) is None or (_said is not None and _said() is args):
        return
    _said = weakref.ref(args)
    logger.warning(notice)


def metric_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    """An evaluator's metrics as Python floats (a numpy scalar does not go into ``trainer_state.json``); a value that
    is no number is a :class:`~biohicl.errors.ConfigError` naming the metric."""
    values = {}
    for name, value in dict(metrics).items():
        try:
            values[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"evaluator: metric {name!r} is not a number ({value!r})") from None
    return values
