"""Evaluation harness: BEIR retrieval, BIOSSES, PubMedQA; trec_eval-exact metrics, reports and plots.

Everything here needs only an :class:`~biohicl.evaluation.encoder.Encoder` — any object with
``encode(texts, batch_size=..., kind="query" | "document", show_progress_bar=...) -> np.ndarray``
(:class:`biohicl.models.model.BioHiCL` is one).

Modules: ``encoder`` (the protocol), ``metrics`` (trec_eval-exact scores), ``results`` (:class:`TaskResult`, record
keys), the tasks ``retrieval`` (BEIR), ``sts`` (BIOSSES), ``pubmedqa`` and ``agreement`` (SimE–SimL), ``tasks`` (the
registry), ``runner`` (:func:`evaluate_model`: several tasks → one results record), ``comparison`` (whether two
records scored a task alike, before a Δ), ``significance`` (a paired bootstrap of a Δ over the items), ``report`` and
``plots``. The torch-backed names are imported on first use.

>>> from biohicl.evaluation import evaluate_model
>>> results = evaluate_model(model, ["scifact:train", "biosses", "pubmedqa"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.evaluation.encoder import DtypeEncoder, Encoder
from biohicl.evaluation.results import TaskResult
from biohicl.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "CorrelationMetric": "biohicl.evaluation.metrics",
    "RetrievalMetric": "biohicl.evaluation.metrics",
    "retrieval_scores": "biohicl.evaluation.metrics",
    "BeirDataset": "biohicl.evaluation.retrieval",
    "dense_retrieve": "biohicl.evaluation.retrieval",
    "evaluate_beir": "biohicl.evaluation.retrieval",
    "load_beir": "biohicl.evaluation.retrieval",
    "evaluate_model": "biohicl.evaluation.runner",
    "TASKS": "biohicl.evaluation.tasks",
    "get_task": "biohicl.evaluation.tasks",
    "register_task": "biohicl.evaluation.tasks",
}

if TYPE_CHECKING:
    from biohicl.evaluation.metrics import CorrelationMetric, RetrievalMetric, retrieval_scores
    from biohicl.evaluation.retrieval import BeirDataset, dense_retrieve, evaluate_beir, load_beir
    from biohicl.evaluation.runner import evaluate_model
    from biohicl.evaluation.tasks import TASKS, get_task, register_task

__all__ = [
    "TASKS",
    "BeirDataset",
    "CorrelationMetric",
    "DtypeEncoder",
    "Encoder",
    "RetrievalMetric",
    "TaskResult",
    "dense_retrieve",
    "evaluate_beir",
    "evaluate_model",
    "get_task",
    "load_beir",
    "register_task",
    "retrieval_scores",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
