"""The evaluator training runs at each evaluation: evaluation-harness tasks on the model being trained.

:class:`TaskEvaluator` is a callable ``model -> {metric: value}`` (the :class:`~biohicl.training.trainer.BioHiCLTrainer`
evaluator seam) that runs task specs through :func:`biohicl.evaluation.runner.evaluate_model` and flattens the
record's summary (``{"biosses/spearman": 0.8}`` → ``{"biosses_spearman": 0.8}``). :func:`evaluator_from_args`
builds it from ``--eval_tasks``; a dataset task without ``@`` (``siml-agreement``) evaluates the run's own dataset.
With ``cache_dir`` (``--eval_cache_dir``) an evaluation of an encoder already evaluated there, bit for bit, on the
same tasks and data is read back (:mod:`biohicl.evaluation.cache`): a study's runs share their step 0 this way.
An evaluator keeps what a ``siml-agreement`` task does not owe to the model (the dev split, read and checked once,
SimL of its pairs and their ranks: :class:`~biohicl.evaluation.agreement.AgreementCache`), so a repeat evaluation
only encodes and correlates.

>>> train_biohicl(args, evaluator=evaluator_from_args(args))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from biohicl.errors import ConfigError
from biohicl.evaluation.results import AGREEMENT_TASK
from biohicl.field_types import is_count

if TYPE_CHECKING:
    from biohicl.evaluation.agreement import AgreementCache

logger = logging.getLogger(__name__)

#: Evaluation tasks over the training dataset itself: ``--eval_tasks siml-agreement`` → ``siml-agreement@<dataset>``.
DATASET_EVAL_TASKS = (AGREEMENT_TASK,)


def resolve_eval_tasks(tasks: Sequence[str], dataset_path: str | None, mesh_path: str | None = None) -> list[str]:
    """``--eval_tasks`` as harness task specs: a dataset task without ``@`` gets the run's ``dataset_path``, and
    every dataset task the run's hierarchy (``mesh_path``, :func:`~biohicl.evaluation.tasks.with_mesh`)."""
    from biohicl.evaluation.tasks import with_mesh

    resolved = []
    for spec in tasks:
        name, sep, split = spec.partition(":")
        if name in DATASET_EVAL_TASKS:
            if not dataset_path:
                raise ConfigError(f"eval_tasks: {name} evaluates the dataset's dev documents and needs dataset_path")
            spec = f"{name}@{dataset_path}" + (f":{split}" if sep else "")
        resolved.append(with_mesh(spec, mesh_path))
    return resolved


def flatten_metrics(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a nested mapping under flat keys (``{task: {metric: v}}`` → ``task_metric``, ``/`` → ``_``);
    anything that is not a number is dropped."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}".replace("/", "_")
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{name}_"))
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class TaskEvaluator:
    """Run evaluation-harness tasks on a model and return flat metrics (a training evaluator).

    Args:
        tasks: harness task specs (``biosses``, ``pubmedqa:dev``, ``siml-agreement@runs/mesh-pairs``, ...).
        max_queries: cap on queries per retrieval task (speed).
        cache_dir: a folder of earlier evaluations (:class:`~biohicl.evaluation.cache.EvaluationCache`); an encoder
            evaluated there before on the same tasks and data is read back instead of evaluated again.
        batch_size: texts per encoding batch (``--per_device_eval_batch_size``); the metrics do not depend on it.

    Agreement tasks' model-independent work (the split read and checked, SimL and its ranks) is done once per
    evaluator (and per version of the dataset's files), not at each evaluation.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        max_queries: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ):
        if not tasks:
            raise ConfigError("eval_tasks: no evaluation task given")
        if not is_count(batch_size):
            raise ConfigError(f"per_device_eval_batch_size: {batch_size!r} is not a positive int")
        self.tasks = list(tasks)
        self.max_queries = max_queries
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self._agreement: AgreementCache | None = None  # made at first use: agreement loads scipy and the data layer

    def _reusing(self) -> AbstractContextManager[AgreementCache]:
        """The context agreement tasks keep their model-independent work in (:func:`~.agreement.reusing`)."""
        from biohicl.evaluation.agreement import AgreementCache, reusing

        if self._agreement is None:
            self._agreement = AgreementCache()
        return reusing(self._agreement)

    def __call__(self, model: Any) -> dict[str, float]:
        """The harness's ``summary`` (``{"biosses/spearman": 0.8, ...}``) as ``{"biosses_spearman": 0.8, ...}``;
        a record without a summary is flattened whole. A task whose encoder returned NaN or inf embeddings (a
        collapsed model, which the harness refuses: :class:`~biohicl.evaluation.retrieval.NonFiniteEmbeddings`)
        scores NaN on each of its metrics, as a collapsed model's correlations do, so training goes on (the trainer
        warns, naming the step; the harness's own line for the task is an info line, so one event is one warning);
        the tasks after it then run, and each task runs once."""
        from biohicl.evaluation.encoder import as_encoder

        model = as_encoder(model)  # a SentenceTransformer through encode_query/encode_document, for the cache key too
        cache = key = None
        if self.cache_dir:
            from biohicl.evaluation.cache import EvaluationCache, evaluation_key

            cache, key = EvaluationCache(self.cache_dir), evaluation_key(model, self.tasks, self.max_queries)
            if (cached := cache.get(key)) is not None:
                logger.info("evaluation read back from %s (the same encoder, tasks and data)", cache.path(key))
                return cached
        with self._reusing():
            values = self._summary(model)
        metrics = flatten_metrics(values)
        if cache is not None and key is not None:
            cache.put(key, metrics, self.tasks)
        return metrics

    def _summary(self, model: Any) -> Mapping[str, Any]:
        """The harness's summary of the tasks on ``model``, a NaN-embeddings task's metrics NaN (:meth:`__call__`):
        the finished tasks' summary comes with the error (its ``finished`` record), and only the tasks after the
        failed one run next, so each task runs once."""
        from biohicl.evaluation.retrieval import NonFiniteEmbeddings
        from biohicl.evaluation.runner import planned_summary_keys

        summary: dict[str, Any] = {}
        tasks = self.tasks
        while True:
            try:
                return summary | dict(self._run(model, tasks))
            except NonFiniteEmbeddings as err:
                if err.finished is None:  # not raised through the harness: which task failed is unknown
                    raise
                incomplete = err.finished["incomplete"]
                logger.info("%s; its metrics are NaN at this evaluation", err)
                summary.update(err.finished.get("summary") or {})
                summary.update(dict.fromkeys(planned_summary_keys([incomplete["failed"]]), float("nan")))
                if not (tasks := list(incomplete["not_run"])):
                    return summary

    def _run(self, model: Any, tasks: list[str]) -> Mapping[str, Any]:
        """The summary of one harness run of ``tasks`` (a record without one: the record)."""
        # at call time: the runner can be swapped in tests
        from biohicl.evaluation.runner import evaluate_model

        record = evaluate_model(  # warn_nan: a NaN metric's one warning is the trainer's, naming the step
            model,
            tasks=tasks,
            batch_size=self.batch_size,
            limit_queries=self.max_queries,
            show_progress_bar=False,
            warn_nan=False,
        )
        return record.get("summary", record) if isinstance(record, Mapping) else {}  # an empty summary stays empty

    def metric_names(self) -> list[str]:
        """The metrics :meth:`__call__` returns, known before any evaluation (the tasks' data is checked too), so a
        run refuses a selection metric no task gives before it trains (``check_evaluation``)."""
        from biohicl.evaluation.runner import planned_summary_keys

        with self._reusing():  # the agreement's pre-flight reads the split once, for the evaluations too
            return [key.replace("/", "_") for key in planned_summary_keys(self.tasks)]

    def __repr__(self) -> str:
        return (
            f"TaskEvaluator(tasks={self.tasks!r}, max_queries={self.max_queries!r}, cache_dir={self.cache_dir!r}, "
            f"batch_size={self.batch_size!r})"
        )


def evaluator_from_args(args: Any) -> TaskEvaluator | None:
    """The evaluator of a training run's ``eval_tasks`` (``dataset_path`` and the run's hierarchy ``mesh_path``
    filled into dataset tasks, at most ``eval_max_queries`` queries per retrieval task, evaluations cached in
    ``eval_cache_dir``, encoding
    ``per_device_eval_batch_size`` texts at a time), or None when the run has no evaluation task."""
    if not args.eval_tasks:
        return None
    tasks = resolve_eval_tasks(args.eval_tasks, args.dataset_path, getattr(args, "mesh_path", None))
    batch_size = getattr(args, "per_device_eval_batch_size", 32)
    return TaskEvaluator(tasks, args.eval_max_queries, args.eval_cache_dir, batch_size)
