"""Evaluation records as model-card rows: metric spellings normalised, the base model's value beside each.

>>> flatten_results({"tasks": {"scifact": {"ndcg_at_10": 0.71}}})
{('scifact', 'ndcg@10'): 0.71}
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from biohicl.errors import DataError
from biohicl.evaluation.comparison import cut_by_cap, scoring_difference
from biohicl.evaluation.results import AGREEMENT_TASK
from biohicl.field_types import is_number

logger = logging.getLogger(__name__)

#: task key → (display name, dataset id on the Hub, task type for model-index)
KNOWN_TASKS: dict[str, tuple[str, str, str]] = {
    "scifact": ("SciFact", "mteb/scifact", "retrieval"),
    "nfcorpus": ("NFCorpus", "mteb/nfcorpus", "retrieval"),
    "trec-covid": ("TREC-COVID", "mteb/trec-covid", "retrieval"),
    "trec_covid": ("TREC-COVID", "mteb/trec-covid", "retrieval"),
    "scidocs": ("SCIDOCS", "mteb/scidocs", "retrieval"),
    "biosses": ("BIOSSES", "mteb/biosses-sts", "sentence-similarity"),
    "pubmedqa": ("PubMedQA (question → long answer)", "qiaojin/PubMedQA", "retrieval"),
    "pubmedqa-context": ("PubMedQA (question → context)", "qiaojin/PubMedQA", "retrieval"),
    "pubmedqa-dev": ("PubMedQA dev (question → long answer; model selection)", "qiaojin/PubMedQA", "retrieval"),
}

#: task key → (config, {biohicl split: split}) of its Hub dataset, where biohicl's split is one that dataset has:
#: MTEB's copies of the BEIR sets and of BIOSSES (config ``default``; BIOSSES's 100 pairs, biohicl's ``all``, are its
#: ``test``, the split a ``{task: metrics}`` dict without one is filed under). A task of :data:`KNOWN_TASKS` whose
#: split is not listed here has no place in model-index (:attr:`EvalRow.hub_config_split` None): PubMedQA's test is the
#: 500 official test questions of ``qiaojin/PubMedQA``'s ``pqa_labeled``, whose one split, ``train``, holds all 1,000,
#: and each question is scored against the long answers (or contexts) of its own split, so no config and split of the
#: Hub dataset is what was measured.
HUB_CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    **{task: ("default", {"test": "test", "dev": "dev", "train": "train"}) for task in ("scifact", "nfcorpus")},
    **{task: ("default", {"test": "test"}) for task in ("trec-covid", "trec_covid", "scidocs")},
    "biosses": ("default", {"all": "test", "test": "test"}),  # `test`: the split a record names by default, or MTEB's
}

#: tasks measured on the training data itself (SimE–SimL agreement on a built dataset's documents), whatever the split
TRAINING_DATA_TASKS = (AGREEMENT_TASK,)
#: splits that are no held-out result, whatever the task: ``dev`` (``pubmedqa:dev``, what model selection scores) and
#: ``train`` (a BEIR task's training qrels: ``scifact:train`` is this project's SciFact dev set, which the selection
#: guard uses and the README's pipeline evaluates; PubMedQA's ``train``, its non-test questions, dev ones included)
NOT_HELD_OUT_SPLITS = ("dev", "train")

#: normalised metric spelling → (metric type for model-index, display name)
KNOWN_METRICS: dict[str, tuple[str, str]] = {
    "ndcg@10": ("ndcg_at_10", "nDCG@10"),
    "recall@1": ("recall_at_1", "Recall@1"),
    "recall@5": ("recall_at_5", "Recall@5"),
    "recall@10": ("recall_at_10", "Recall@10"),
    "recall@100": ("recall_at_100", "Recall@100"),
    "mrr@10": ("mrr_at_10", "MRR@10"),
    "map@100": ("map_at_100", "MAP@100"),
    "spearman": ("spearman", "Spearman"),
    "pearson": ("pearson", "Pearson"),
}


def metric_key(name: str) -> str:
    """``ndcg_at_10`` / ``nDCG@10`` / ``ndcg_cut_10`` → ``ndcg@10``; ``recall_1`` → ``recall@1``."""
    key = name.strip().lower().replace(" ", "")
    key = re.sub(r"_cut_|_at_|_", "@", key, count=1) if re.search(r"\d$", key) else key
    return key.replace("r@", "recall@") if key.startswith("r@") else key


@dataclass
class EvalRow:
    """One evaluation figure for the card: the BioHiCL value and, when measured, the base model's."""

    task: str = field(metadata={"help": "Task key, e.g. scifact, biosses, pubmedqa."})
    metric: str = field(metadata={"help": "Metric key, e.g. ndcg@10, spearman, recall@1."})
    value: float = field(metadata={"help": "The BioHiCL model's score."})
    base_value: float | None = field(default=None, metadata={"help": "The base model's score on the same run."})
    split: str = field(default="test", metadata={"help": "Dataset split evaluated."})
    limit_queries: int | None = field(
        default=None, metadata={"help": "Only the task's first N queries were scored (evaluate --limit_queries)."}
    )

    @property
    def _task_info(self) -> tuple[str, str, str]:
        """(display name, dataset id, task type); an unknown task is its own name and dataset, a retrieval task."""
        return KNOWN_TASKS.get(self.task, (self.task, self.task, "retrieval"))

    @property
    def task_name(self) -> str:
        return self._task_info[0]

    @property
    def label(self) -> str:
        """The task and its split as a card's table shows them, the split once (``pubmedqa-dev`` names its own);
        ``(first N queries)`` after a task scored on part of its queries."""
        label = self.task_name if self.task.endswith(f"-{self.split}") else f"{self.task_name} ({self.split})"
        return label if self.limit_queries is None else f"{label} (first {self.limit_queries} queries)"

    @property
    def dataset_type(self) -> str:
        return self._task_info[1]

    @property
    def task_type(self) -> str:
        return self._task_info[2]

    @property
    def hub_config_split(self) -> tuple[str, str] | None:
        """``(config, split)`` for model-index: the Hub dataset's own where it has this split (:data:`HUB_CONFIGS`);
        None for a task of a known Hub dataset that has no such split (PubMedQA: kept out of model-index); the task
        key and biohicl's split for a task biohicl does not know (a BEIR folder, its own dataset)."""
        config, splits = HUB_CONFIGS.get(self.task, (self.task, {}))
        if self.split in splits:
            return config, splits[self.split]
        return None if self.task in KNOWN_TASKS else (self.task, self.split)

    @property
    def metric_type(self) -> str:
        return KNOWN_METRICS.get(self.metric, (re.sub(r"[^a-z0-9]+", "_", self.metric.lower()), ""))[0]

    @property
    def metric_name(self) -> str:
        return KNOWN_METRICS.get(self.metric, ("", self.metric))[1]

    @property
    def held_out(self) -> bool:
        """A held-out evaluation result (what the Hub's model-index lists): not a dev or train split
        (:data:`NOT_HELD_OUT_SPLITS`: ``pubmedqa-dev``, ``split: dev``, what model selection used; ``scifact:train``,
        this project's SciFact dev set), not an agreement measured on the training data (``siml-agreement``), not a
        task scored on its first queries only (``limit_queries``)."""
        partial = self.limit_queries is not None
        dev = self.split in NOT_HELD_OUT_SPLITS or self.task.endswith("-dev")
        return not (partial or dev or self.task in TRAINING_DATA_TASKS)

    @property
    def delta(self) -> float | None:
        return None if self.base_value is None else self.value - self.base_value


def flatten_results(results: dict[str, Any] | None, all_metrics: bool = False) -> dict[tuple[str, str], float]:
    """``{task: {metric: value}}`` (optionally under ``results``/``tasks``, metrics under ``metrics``) → flat.

    Reads the evaluation harness's record (``biohicl evaluate --output``): when it has a ``summary``
    (``{"task/metric": value}``, the metrics each task reports), only those metrics are kept unless ``all_metrics``.
    Non-numeric entries (model id, timings, hashes) are skipped; metric spellings are normalised (``ndcg_at_10`` →
    ``ndcg@10``).
    """
    if not results:
        return {}
    tasks = results.get("results", results.get("tasks", results))
    if not isinstance(tasks, dict):
        raise DataError("evaluation results: expected {task: {metric: value}}")
    summary = results.get("summary") if isinstance(results.get("summary"), dict) and not all_metrics else None
    wanted = {tuple(key.lower().split("/", 1)) for key in summary} if summary else None
    flat: dict[tuple[str, str], float] = {}
    for task, metrics in tasks.items():
        if not isinstance(metrics, dict):
            continue
        metrics = metrics.get("metrics", metrics)
        for name, value in metrics.items():
            if not is_number(value) or not math.isfinite(value):
                continue
            if name in {"wall_time", "wall_time_s", "time", "seconds", "num_queries", "num_documents", "n"}:
                continue
            if wanted is not None and (str(task).lower(), name.lower()) not in wanted:
                continue
            flat[(str(task).lower(), metric_key(name))] = float(value)
    return flat


def result_splits(results: dict[str, Any] | None) -> dict[str, str]:
    """``{task: split}`` from a harness record (tasks carrying a ``split`` field)."""
    tasks = (results or {}).get("tasks", {})
    if not isinstance(tasks, dict):
        return {}
    return {str(t).lower(): str(r["split"]) for t, r in tasks.items() if isinstance(r, dict) and r.get("split")}


def _by_task(results: dict[str, Any] | None) -> dict[str, Any]:
    """``results`` with its ``tasks`` keyed as card rows key them (lower case), only the entries that are mappings."""
    tasks = (results or {}).get("tasks")
    tasks = {str(t).lower(): r for t, r in tasks.items() if isinstance(r, dict)} if isinstance(tasks, dict) else {}
    return {**(results or {}), "tasks": tasks}


def base_difference(results: dict[str, Any], base: dict[str, Any] | None, task: str) -> str | None:
    """Why ``base``'s value of ``task`` does not go beside ``results``'s, or None: the records scored the task
    differently (:func:`~biohicl.evaluation.comparison.scoring_difference`, the rule of ``biohicl evaluate --compare``:
    split, data, query cap, max length or prompts, each where both records say it)."""
    ours, theirs = _by_task(results), _by_task(base)
    if task not in ours["tasks"] or task not in theirs["tasks"]:
        return None
    return scoring_difference(task, (ours, theirs), ("model", "base"))


def card_rows(
    results: dict[str, Any], base: dict[str, Any] | None = None, split: str = "test", all_metrics: bool = False
) -> list[EvalRow]:
    """A record's card rows (:func:`flatten_results`), each with the base's value unless :func:`base_difference`
    says why not (one warning names each such task and why); a task its ``limit_queries`` N cut (scored on its first
    N queries: :func:`~biohicl.evaluation.comparison.cut_by_cap`, the base the witness of the task's size) carries N."""
    tuned = flatten_results(results, all_metrics)
    reference = flatten_results(base, all_metrics) if base is not None else {}
    ours, witnesses = _by_task(results), [_by_task(base)] if base is not None else []
    rows, differing = [], {}
    for (task, metric), value in tuned.items():
        base_value = reference.get((task, metric))
        if base_value is not None and (why := differing.get(task) or base_difference(results, base, task)):
            differing[task], base_value = why, None
        cut = cut_by_cap(task, ours, witnesses)
        split_shown = result_splits(results).get(task, split)
        rows.append(EvalRow(task, metric, value, base_value, split_shown, cut.cap if cut is not None else None))
    if differing:
        shown = "; ".join(f"{task}: {why}" for task, why in differing.items())
        logger.warning("the base's values are left out of the card where it was evaluated otherwise (%s)", shown)
    return rows
