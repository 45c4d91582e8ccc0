"""Ranking and correlation metrics, exact to trec_eval, usable offline through the ``evaluate`` API.

Ranking metrics follow trec_eval 9.x (the C code ``pytrec_eval`` wraps) to the last bit:

* a run is ordered by score, descending, ties broken by document id in *descending* string order;
* ``ndcg@k`` = trec_eval ``ndcg_cut.k``: gain = the judged relevance grade (linear, not ``2^rel - 1``),
  discount ``log2(rank + 1)``, ideal ranking = every judged document of the query sorted by grade;
* ``recall@k`` = ``recall_k``: relevant (grade >= 1) documents in the top k / all relevant documents;
* ``mrr@k`` = ``recip_rank`` on the run cut to its top k: 1 / rank of the first relevant document, else 0;
* means are taken over the queries that have both judgements and a ranking (trec_eval without ``-c``): a query
  whose judgements are empty is left out, as one with no documents ranked;
* a document listed twice for one query, in a run or in the judgements, is refused (trec_eval's
  ``duplicate docs``); pytrec_eval's mappings cannot hold two.

``tests/test_metrics.py`` checks these against hand-computed rankings and against ``pytrec_eval`` itself.

>>> metric = RetrievalMetric()
>>> metric.compute(predictions=[{"doc_ids": ["d1", "d2"], "scores": [0.9, 0.1]}],
...                references=[{"doc_ids": ["d2"], "relevance": [1]}], k_values=[1, 10])["mrr@10"]
0.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasets
import evaluate
import numpy as np

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_K_VALUES: tuple[int, ...] = (1, 5, 10, 100)
MEASURES: tuple[str, ...] = ("ndcg", "recall", "mrr")


def rank_documents(doc_scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval order: score descending, ties by document id descending."""
    return [doc for doc, _ in sorted(doc_scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain with trec_eval's discount ``log2(rank + 1)`` (rank from 1)."""
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains) if gain)


def ndcg_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """trec_eval ``ndcg_cut.k`` of one ranking; unjudged and non-positive grades give no gain."""
    gains = [max(int(judgments.get(doc, 0)), 0) for doc in ranked[:k]]
    ideal = sorted((max(int(rel), 0) for rel in judgments.values()), reverse=True)[:k]
    ideal_dcg = dcg(ideal)
    return dcg(gains) / ideal_dcg if ideal_dcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """trec_eval ``recall_k``: relevant (grade >= 1) documents found in the top ``k`` over all relevant documents."""
    relevant = {doc for doc, rel in judgments.items() if rel >= 1}
    if not relevant:
        return 0.0
    return sum(1 for doc in ranked[:k] if doc in relevant) / len(relevant)


def reciprocal_rank_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """trec_eval ``recip_rank`` on the top ``k``: 1 / rank of the first relevant (grade >= 1) document, 0 when none."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if judgments.get(doc, 0) >= 1:
            return 1.0 / rank
    return 0.0


_MEASURE_FUNCTIONS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": reciprocal_rank_at_k}


def per_query_scores(
    qrels: Qrels,
    run: Run,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    measures: Iterable[str] = MEASURES,
) -> dict[str, dict[str, float]]:
    """``{query_id: {"ndcg@10": ..., ...}}`` for the queries with judgements in ``qrels`` and documents in ``run``
    (an empty mapping on either side is no query, as trec_eval has it)."""
    k_values = sorted(set(k_values))
    measures = list(measures)
    unknown = [m for m in measures if m not in _MEASURE_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; known: {', '.join(_MEASURE_FUNCTIONS)}")
    scores: dict[str, dict[str, float]] = {}
    for query_id, doc_scores in run.items():
        judgments = qrels.get(query_id)
        if not judgments or not doc_scores:
            continue
        if any(score != score for score in doc_scores.values()):  # NaN has no rank
            raise ValueError(f"query {query_id}: NaN score in the run")
        ranked = rank_documents(doc_scores)
        scores[query_id] = {
            f"{measure}@{k}": _MEASURE_FUNCTIONS[measure](ranked, judgments, k)
            for measure in measures
            for k in k_values
        }
    return scores


def _means(per_query: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Each metric's mean over the queries of :func:`per_query_scores` (0.0 for every metric without any)."""
    if not per_query:
        return dict.fromkeys(names, 0.0)
    return {name: float(np.mean([scores[name] for scores in per_query.values()])) for name in names}


def _metric_names(k_values: Iterable[int], measures: Iterable[str]) -> list[str]:
    return [f"{measure}@{k}" for measure in measures for k in sorted(set(k_values))]


def retrieval_scores(
    qrels: Qrels,
    run: Run,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    measures: Iterable[str] = MEASURES,
) -> dict[str, float]:
    """Mean of :func:`per_query_scores` over the evaluated queries (trec_eval's ``all`` line)."""
    k_values, measures = list(k_values), list(measures)
    return _means(per_query_scores(qrels, run, k_values, measures), _metric_names(k_values, measures))


def retrieval_scores_with_items(
    qrels: Qrels,
    run: Run,
    main_metric: str,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    measures: Iterable[str] = MEASURES,
) -> tuple[dict[str, float], list[str], list[float]]:
    """:func:`retrieval_scores` and the ``(query ids, values)`` of ``main_metric`` (``recall@1``) for each query it
    averages over (the items a paired test resamples), from one pass of :func:`per_query_scores`."""
    k_values, measures = list(k_values), list(measures)
    names = _metric_names(k_values, measures)
    if main_metric not in names:
        raise ValueError(f"main metric {main_metric!r} is not one of the computed {', '.join(names)}")
    per_query = per_query_scores(qrels, run, k_values, measures)
    return _means(per_query, names), list(per_query), [scores[main_metric] for scores in per_query.values()]


class RetrievalMetric(evaluate.Metric):
    """nDCG@k, Recall@k and MRR@k exactly as trec_eval computes them (see the module docstring).

    One example per query. ``predictions``: ``{"doc_ids": [...], "scores": [...]}`` (the retrieved documents and
    their scores, any order); ``references``: ``{"doc_ids": [...], "relevance": [...]}`` (the judged documents and
    their integer grades). ``compute(k_values=[1, 10, 100], measures=["ndcg", "recall", "mrr"])`` returns the means
    over the queries with both (a row without documents is no query). A doc id listed twice in one row is refused,
    naming the query (its example's position, from 0) and the id.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("keep_in_memory", True)  # no Arrow cache files on disk
        super().__init__(**kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="trec_eval-exact nDCG@k (ndcg_cut), Recall@k (recall_k) and MRR@k (recip_rank on top k).",
            citation="trec_eval, https://github.com/usnistgov/trec_eval",
            inputs_description=self.__doc__ or "",
            features=datasets.Features(
                {
                    "predictions": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "scores": datasets.Sequence(datasets.Value("float64")),
                    },
                    "references": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "relevance": datasets.Sequence(datasets.Value("int64")),
                    },
                }
            ),
        )

    def _compute(
        self,
        predictions: list[dict],
        references: list[dict],
        k_values: Sequence[int] = DEFAULT_K_VALUES,
        measures: Sequence[str] = MEASURES,
    ) -> dict[str, float]:
        run = {str(i): _by_doc(i, p["doc_ids"], p["scores"], "predictions") for i, p in enumerate(predictions)}
        qrels = {str(i): _by_doc(i, r["doc_ids"], r["relevance"], "references") for i, r in enumerate(references)}
        return retrieval_scores(qrels, run, k_values, measures)

    def compute_from_dicts(
        self, qrels: Qrels, run: Run, k_values: Sequence[int] = DEFAULT_K_VALUES, measures: Sequence[str] = MEASURES
    ) -> dict[str, float]:
        """``compute`` from BEIR-style dicts (``qrels[qid][doc] = grade``, ``run[qid][doc] = score``)."""
        shared = [qid for qid in run if run[qid] and qrels.get(qid)]
        predictions = [{"doc_ids": list(run[q]), "scores": [float(s) for s in run[q].values()]} for q in shared]
        references = [{"doc_ids": list(qrels[q]), "relevance": [int(r) for r in qrels[q].values()]} for q in shared]
        if not shared:
            return retrieval_scores({}, {}, k_values, measures)
        return self.compute(predictions=predictions, references=references, k_values=k_values, measures=measures)


def _by_doc(query: int, doc_ids: Sequence[str], values: Sequence[Any], side: str) -> dict[str, Any]:
    """``{doc id: score or grade}`` of one example (query ``query``, numbered from 0); a :class:`ValueError` naming
    a doc id listed twice, which a mapping would silently keep the last of (trec_eval refuses it)."""
    by_doc = dict(zip(doc_ids, values, strict=True))
    if len(by_doc) < len(doc_ids):
        twice = next(doc for i, doc in enumerate(doc_ids) if doc in doc_ids[:i])
        what = "score" if side == "predictions" else "grade"
        raise ValueError(
            f"query {query}: doc id {twice!r} is listed twice in its {side} (trec_eval refuses duplicate docs); "
            f"give each document one {what}"
        )
    return by_doc


class CorrelationMetric(evaluate.Metric):
    """Spearman and Pearson correlation of predicted similarities with gold scores (``scipy.stats``); both NaN when
    the predictions are constant or not finite (a collapsed model's: the correlation is undefined, and an evaluation
    during training goes on; the runner names the task in one warning line). Gold scores of that kind, or fewer
    than 2 pairs: ``ValueError``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("keep_in_memory", True)
        super().__init__(**kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Spearman rank and Pearson linear correlation between predictions and references.",
            citation="",
            inputs_description="predictions: list of float; references: list of float (same length).",
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions: list[float], references: list[float]) -> dict[str, float]:
        import numpy as np
        from scipy.stats import pearsonr, spearmanr

        if len(predictions) < 2:
            raise ValueError("correlation needs at least 2 pairs")
        gold = np.asarray(references, dtype=np.float64)
        if not np.isfinite(gold).all():
            raise ValueError("references: NaN or inf values")
        if np.ptp(gold) == 0:
            raise ValueError("references: all values are equal, the correlation is undefined")
        predicted = np.asarray(predictions, dtype=np.float64)
        if not np.isfinite(predicted).all() or np.ptp(predicted) == 0:  # a collapsed model: undefined, not an error
            return {"spearman": float("nan"), "pearson": float("nan")}
        return {
            "spearman": float(spearmanr(predictions, references).statistic),
            "pearson": float(pearsonr(predictions, references).statistic),
        }
