"""Evaluation harness: BEIR retrieval, BIOSSES, PubMedQA; trec_eval-exact metrics, reports and plots.

Everything here needs only an :class:`~biohicl.evaluation.encoder.Encoder` — any object with
``encode(texts, batch_size=..., kind="query" | "document", show_progress_bar=...) -> np.ndarray``
(:class:`biohicl.models.model.BioHiCL` is one).

Modules: ``encoder`` (the protocol), ``metrics`` (trec_eval-exact scores), ``results`` (:class:`TaskResult`, record
keys), the tasks ``retrieval`` (BEIR), ``sts`` (BIOSSES), ``pubmedqa`` and ``agreement`` (SimE–SimL), ``tasks`` (the
registry), ``runner`` (:func:`evaluate_model`: several tasks → one results record), ``significance`` (a paired
bootstrap of a Δ over the items), ``report`` and ``plots``.

>>> from biohicl.evaluation import evaluate_model
>>> results = evaluate_model(model, ["scifact:train", "biosses", "pubmedqa"])  # doctest: +SKIP
"""

from biohicl.evaluation.encoder import DtypeEncoder, Encoder
from biohicl.evaluation.metrics import CorrelationMetric, RetrievalMetric, retrieval_scores
from biohicl.evaluation.results import TaskResult
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
