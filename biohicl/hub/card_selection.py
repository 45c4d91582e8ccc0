"""What a model card says about dev model selection: the record of training_summary.json, and each dev metric the
selection used at step 0 (the base) and at the kept step, from the run's ``dev_evaluations.json``.

>>> selection_of(summary, args, evaluations)["dev_metrics"][-1]  # ``[]`` without dev_evaluations.json's rows
{'metric': 'scifact_ndcg@10', 'task': 'SciFact (train)', 'name': 'nDCG@10', 'role': 'guard', 'base': 0.66, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biohicl.hub.eval_rows import EvalRow, metric_key
from biohicl.jsonio import nan_for_null
from biohicl.training.selection import read_selection
from biohicl.training.selection_splits import held_out_names


def _splits(eval_tasks: Sequence[str]) -> dict[str, str]:
    """``{evaluation key: split}`` of the ``eval_tasks`` entries naming a split their key does not: ``scifact:train``
    → ``{"scifact": "train"}``; ``pubmedqa:dev`` is keyed ``pubmedqa-dev`` (:func:`record_name`), whose label names
    the split already."""
    from biohicl.evaluation.tasks import parse_task_spec, record_name

    splits = {}
    for entry in eval_tasks:
        name, split = parse_task_spec(str(entry))
        key = record_name(name, split)
        if split and key == record_name(name, None):
            splits[key] = split
    return splits


def dev_metric_rows(selection: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric the selection scored or guarded on: its value at step 0 and at the kept step, read from
    ``dev_evaluations.json``'s rows (``[]`` when either step was not recorded)."""
    by_step = {int(row["step"]): row for row in evaluations if isinstance(row, dict) and "step" in row}
    base, kept = by_step.get(0), by_step.get(selection.get("best_step"))
    if base is None or kept is None:
        return []
    splits = _splits(selection.get("eval_tasks") or [])
    rows = []
    roles = [(m, "score") for m in selection["metrics"]] + [(m, "guard") for m in selection["guard"]]
    for metric, role in roles:
        key = f"eval_{str(metric).removeprefix('eval_')}"
        if key not in base or key not in kept:
            continue
        task, _, name = key.removeprefix("eval_").rpartition("_")
        kept_value, base_value = float(nan_for_null(kept[key])), float(nan_for_null(base[key]))
        row = EvalRow(task or name, metric_key(name) if task else name, kept_value, base_value)
        split = splits.get(task)
        rows.append(
            {
                "metric": key.removeprefix("eval_"),
                "task": f"{row.task_name} ({split})" if split else row.task_name,
                "name": row.metric_name,
                "role": role,
                "base": row.base_value,
                "kept": row.value,
            }
        )
    return rows


def selection_of(
    summary: dict[str, Any], args: dict[str, Any], evaluations: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """What the card says about dev model selection: ``{}`` when the run kept its last step without selecting.
    ``evaluations``: the run's ``dev_evaluations.json`` rows, for the dev metrics at step 0 and the kept step.
    ``held_out``: the tasks the selection read on a split that is no dev data (``["biosses:all", "pubmedqa:test"]``,
    :func:`~biohicl.training.selection_splits.held_out_names`), for which the card says the selection was on held-out
    data, not on dev data only."""
    record = read_selection(summary.get("selection") or {})  # a null score of a measured step is NaN
    if not record.get("loaded_best"):
        return {}
    selection = {
        "steps": [int(step) for step, _ in record.get("evaluations") or []],
        "best_step": record.get("best_step"),
        "best_metric": record.get("best_metric"),
        "step0_metric": record.get("step0_metric"),
        "selected_base": bool(record.get("selected_base")),
        "metrics": list(args.get("selection_metrics") or [record.get("selection_metric")]),
        "guard": list(args.get("selection_guard") or []),
        "guard_mode": args.get("selection_guard_mode") or "mean",
        "guard_tolerance": args.get("selection_guard_tolerance") or 0.0,
        "eval_tasks": list(args.get("eval_tasks") or []),
    }
    settings = {**args, "load_best_model_at_end": True}  # it loaded its best step, on the metric the record names
    settings["metric_for_best_model"] = record.get("selection_metric") or args.get("metric_for_best_model")
    selection["held_out"] = held_out_names(settings)
    selection["dev_metrics"] = dev_metric_rows(selection, evaluations)
    return selection


def read_card_selection(selection: Any) -> Any:
    """The card's ``selection`` (:func:`selection_of`) as ``card_data.json`` holds it, its scores read back: a
    ``null`` score of a step that was evaluated is NaN (:func:`~biohicl.jsonio.nan_for_null`), the kept step's
    and step 0's, and each dev metric row's; anything not of that shape is returned as it is."""
    if not isinstance(selection, dict):
        return selection
    read = dict(selection)
    if read.get("best_step") is not None and "best_metric" in read:
        read["best_metric"] = nan_for_null(read["best_metric"])
    if isinstance(read.get("steps"), list) and 0 in read["steps"] and "step0_metric" in read:
        read["step0_metric"] = nan_for_null(read["step0_metric"])
    if isinstance(read.get("dev_metrics"), list):
        read["dev_metrics"] = [
            {key: nan_for_null(value) if key in ("base", "kept") else value for key, value in row.items()}
            if isinstance(row, dict)
            else row
            for row in read["dev_metrics"]
        ]
    return read
