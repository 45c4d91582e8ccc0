"""What a task returns and how a results record files it: :class:`TaskResult`, record and summary keys, checksums,
the record's format number and :func:`signed`, the one Δ formatter (torch-free: the hub and the study import them).

A results record (``evaluate_model``'s output, ``eval.json`` of a study run) holds ``tasks`` (task key →
:meth:`TaskResult.to_dict`) and ``summary`` (``task/metric`` → value, the metrics each task reports).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from biohicl.provenance import files_sha256

#: the version of a results record's layout (``format``)
RESULTS_FORMAT = 1

#: Tasks whose ``dev`` split (model selection) is filed apart from the split they report (``pubmedqa-dev``).
DEV_SPLIT_TASKS = ("pubmedqa", "pubmedqa-context")
#: Tasks that score every item whatever ``limit_queries`` says (BIOSSES's 100 pairs; ``tasks._biosses`` drops it).
UNCAPPED_TASKS = ("biosses",)
#: The SimE-SimL agreement task's name (:mod:`biohicl.evaluation.agreement`), here so that matching records by their
#: tasks (:mod:`biohicl.evaluation.comparison`) imports no task, nor scipy and the data layer.
AGREEMENT_TASK = "siml-agreement"


@dataclass
class TaskResult:
    """The outcome of one task: metric means plus what is needed to reproduce and audit them."""

    task: str = field(metadata={"help": "Task name, e.g. scifact."})
    split: str = field(metadata={"help": "Split evaluated (qrels file, PubMedQA split, 'all' for BIOSSES)."})
    main_metric: str = field(metadata={"help": "The metric the paper reports for this task."})
    metrics: dict[str, float] = field(metadata={"help": "Metric name -> value (fractions, not percent)."})
    num_queries: int = field(metadata={"help": "Queries (retrieval) or pairs (STS) evaluated."})
    num_documents: int = field(default=0, metadata={"help": "Candidate documents searched (0 for STS)."})
    data_files: dict[str, str] = field(default_factory=dict, metadata={"help": "Data file -> sha256."})
    wall_time_s: float = field(default=0.0, metadata={"help": "Seconds spent on this task (encoding included)."})
    protocol: str = field(default="", metadata={"help": "One line saying exactly what was measured."})
    per_item: dict[str, list] = field(
        default_factory=dict,
        metadata={
            "help": "What each item gave, for paired tests (biohicl.evaluation.significance): `ids` with `scores` "
            "(each query's main metric) or with `predictions` and `gold` (each STS pair). A record keeps them only "
            "when asked (`evaluate_model(per_item=True)`, `biohicl evaluate --per_item`); asked, a task that has "
            "none (the SimE-SimL agreement) keeps an empty mapping."
        },
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_key(name: str, split: str | None) -> str:
    """The key a task's result is filed under in a results record: its name, or ``<name>-dev`` for the dev split of
    a task that also reports a test split, so one record holds both (``pubmedqa-dev/recall@1`` beside
    ``pubmedqa/recall@1``) and a dev number can never stand in for a reported one."""
    return f"{name}-dev" if split == "dev" and name in DEV_SPLIT_TASKS else name


def summary_key(task: str, metric: str) -> str:
    """The key of one metric in a record's ``summary``: ``task/metric`` (``biosses/spearman``)."""
    return f"{task}/{metric}"


def split_summary_key(key: str) -> tuple[str, str]:
    """``"biosses/spearman"`` → ``("biosses", "spearman")`` (the inverse of :func:`summary_key`)."""
    task, _, metric = key.partition("/")
    return task, metric


def file_checksums(paths: Iterable[Path]) -> dict[str, str]:
    """``{"<folder>/<file>": sha256}``; names are relative to the data directory's dataset folder (no machine paths)."""
    checksums = {}
    for path in paths:
        path = Path(path)
        key = f"{path.parent.parent.name}/{path.parent.name}/{path.name}" if path.parent.name == "qrels" else None
        checksums[key or f"{path.parent.name}/{path.name}"] = files_sha256([path])
    return checksums


def signed(value: float, digits: int = 2) -> str:
    """``value`` with its sign at ``digits`` decimals; one that rounds to zero (-0.0, -0.001) is ``+0.00``: every
    printed Δ (tables, plots, cards, the console) goes through it."""
    text = f"{value:+.{digits}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0 else text
