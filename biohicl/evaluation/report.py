"""Markdown tables from results files (one row per run, one column per task metric)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biohicl.evaluation.comparison import check_comparable
from biohicl.evaluation.results import signed, split_summary_key
from biohicl.evaluation.tasks import reported_metrics

METRIC_LABELS = {
    "ndcg": "nDCG",
    "recall": "R",
    "mrr": "MRR",
    "spearman": "Spearman",
    "pearson": "Pearson",
}


def metric_label(metric: str) -> str:
    """``ndcg@10`` → ``nDCG@10``, ``recall@1`` → ``R@1``, ``spearman`` → ``Spearman``."""
    name, sep, k = metric.partition("@")
    return METRIC_LABELS.get(name, name) + (f"@{k}" if sep else "")


def summary_label(key: str) -> str:
    """A ``summary`` key as a column header: ``biosses/spearman`` → ``biosses Spearman``."""
    task, metric = split_summary_key(key)
    return f"{task} {metric_label(metric)}"


def run_label(record: dict[str, Any], fallback: str = "") -> str:
    """A short row label: the model id (or the fallback), with the dtype when it is not float32."""
    model = record.get("model", {})
    label = model.get("id") or model.get("config", {}).get("base_model") or fallback or "model"
    dtype = record.get("settings", {}).get("dtype")
    if dtype and dtype not in ("float32", "fp32"):
        label += f" ({dtype})"
    return label


def columns(records: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(task, split, metric)`` columns in first-seen order over all records."""
    seen: dict[tuple[str, str, str], None] = {}
    for record in records:
        for task, result in record["tasks"].items():
            for metric in reported_metrics(task, result):
                seen.setdefault((task, result.get("split", ""), metric), None)
    return list(seen)


def markdown_table(
    records: Sequence[dict[str, Any]] | dict[str, Any],
    labels: Sequence[str] | None = None,
    digits: int = 4,
    sources: Sequence[str | Path] = (),
) -> str:
    """A Markdown table: rows = runs, columns = ``task (split) metric``; a Δ row when exactly two runs are given,
    which both scored alike (:func:`~biohicl.evaluation.comparison.check_comparable`: else a :class:`DataError` naming
    the task and what differs; ``sources``: the records' files, for that message); one record alone works too."""
    records = [records] if isinstance(records, dict) else records
    if not records:
        return ""
    labels = list(labels) if labels else [run_label(r, f"run {i + 1}") for i, r in enumerate(records)]
    if len(records) == 2:
        check_comparable(records, sources or labels)
    cols = columns(records)

    def value(record: dict[str, Any], col: tuple[str, str, str]) -> float | None:
        task, split, metric = col
        result = record["tasks"].get(task)
        if result is None or result.get("split", "") != split:
            return None
        return result["metrics"].get(metric)

    header = ["model", *(f"{task} ({split}) {metric_label(metric)}" for task, split, metric in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
    for label, record in zip(labels, records, strict=True):
        cells = [value(record, col) for col in cols]
        lines.append("| " + " | ".join([label, *("–" if c is None else f"{c:.{digits}f}" for c in cells)]) + " |")
    if len(records) == 2:
        deltas = []
        for col in cols:
            a, b = value(records[0], col), value(records[1], col)
            deltas.append("–" if a is None or b is None else signed(b - a, digits))
        lines.append("| " + " | ".join([f"Δ ({labels[1]} − {labels[0]})", *deltas]) + " |")
    notes = incomplete_notes(records, labels)
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def incomplete_notes(records: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> list[str]:
    """:func:`incomplete_note` of each record that has one (``labels``: the records' own, else :func:`run_label`)."""
    labels = list(labels) if labels else [run_label(r, f"run {i + 1}") for i, r in enumerate(records)]
    return [note for label, record in zip(labels, records, strict=True) if (note := incomplete_note(label, record))]


def incomplete_note(label: str, record: dict[str, Any]) -> str | None:
    """One line for a record of a run that stopped (``incomplete``, as ``biohicl evaluate`` keeps its finished tasks
    in ``<output>.incomplete.json``): the task that failed, its error and the tasks not run; None for another."""
    incomplete = record.get("incomplete")
    if not isinstance(incomplete, dict):
        return None
    not_run = incomplete.get("not_run") or []
    tail = f"; not run: {', '.join(map(str, not_run))}" if not_run else ""
    return f"note: {label} is incomplete: {incomplete.get('failed')} failed ({incomplete.get('error')}){tail}"


def markdown_report(
    records: Sequence[dict[str, Any]],
    paths: Sequence[str | Path] | None = None,
    labels: Sequence[str] | None = None,
) -> str:
    """The table plus, per run, the settings that matter to read it (split, dtype, max length, wall time)."""
    table = markdown_table(records, labels=labels, sources=paths or ())
    notes = []
    for i, record in enumerate(records):
        settings = record.get("settings", {})
        source = f" — `{Path(paths[i]).name}`" if paths else ""
        revision = record.get("model", {}).get("revision") or "unpinned"
        parts = [f"revision {revision}"]
        for key in ("dtype", "max_length", "batch_size", "limit_queries"):
            if settings.get(key) is not None:
                parts.append(f"{key} {settings[key]}")
        parts.append(f"wall time {record.get('wall_time_s', 0):.0f} s")
        label = labels[i] if labels else run_label(record, f"run {i + 1}")
        notes.append(f"- {label}{source}: " + ", ".join(parts))
    return table + "\n" + "\n".join(notes) + "\n"
