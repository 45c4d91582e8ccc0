"""Evaluation harness: BEIR retrieval, BIOSSES, PubMedQA; trec_eval-exact metrics, reports and plots.

Everything here needs only an :class:`Encoder` — any object with
``encode(texts, batch_size=..., kind="query" | "document", show_progress_bar=...) -> np.ndarray``
(:class:`biohicl.models.model.BioHiCLModel` is one).

>>> from biohicl.evaluation import evaluate_model
>>> results = evaluate_model(model, ["scifact:train", "biosses", "pubmedqa"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """What evaluation needs from a model: texts in, one embedding row per text out (input order)."""

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "document",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray: ...


from biohicl.evaluation.metrics import CorrelationMetric, RetrievalMetric, retrieval_scores  # noqa: E402
from biohicl.evaluation.retrieval import BeirDataset, dense_retrieve, evaluate_beir, load_beir  # noqa: E402
from biohicl.evaluation.runner import evaluate_model  # noqa: E402
from biohicl.evaluation.tasks import TASKS, TaskResult, get_task, register_task  # noqa: E402

__all__ = [
    "TASKS",
    "BeirDataset",
    "CorrelationMetric",
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
