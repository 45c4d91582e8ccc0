"""Model selection on dev metrics: the mean of several metrics (``dev_score``), optionally guarded by others that
must not fall below the base's (``guard_holds``), checking that a selection metric is one the evaluator gives,
picking the best evaluated step (step 0, the base weights, included; a NaN or infinite value never), the warning
when the base is kept, the ``training_summary.json`` keys that record the choice, and every evaluation's metrics
(``dev_evaluations.json``); both records as their readers take them back (:func:`read_summary`,
:func:`read_evaluation_rows`: a ``null`` score of an evaluated step is NaN)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from biohicl.errors import ConfigError
from biohicl.field_types import is_int
from biohicl.jsonio import nan_for_null


def check_metric(option: str, name: str, available: Iterable[str], key: str | None = None) -> None:
    """ConfigError naming ``option`` and ``name`` when ``key`` (default: ``name``) is not among ``available``
    (listed, sorted)."""
    available = set(available)
    if (name if key is None else key) not in available:
        known = ", ".join(sorted(available))
        raise ConfigError(f"{option}: {name} is not an evaluation metric (the tasks give {known})")


#: The significant digits a dev score and the guard's comparison are taken at (:func:`score_digits`).
SCORE_DIGITS = 12


def score_digits(value: float) -> float:
    """``value`` rounded to :data:`SCORE_DIGITS` significant digits (NaN and inf as they are): the one rule that lets
    scores equal mathematically compare equal, whatever order their floats were summed in (the mean of 0.804 and
    0.936 is 0.87 as 0.800 and 0.940's is, not 0.8700000000000001), so a tie keeps the earlier step."""
    return float(f"{value:.{SCORE_DIGITS}g}")


def dev_score(metrics: Mapping[str, float], names: Sequence[str], option: str = "selection_metrics") -> float:
    """The mean of the named metrics (``eval_`` prefix optional), summed exactly (``math.fsum``) and taken at
    :data:`SCORE_DIGITS` significant digits (:func:`score_digits`); ConfigError naming ``option`` and a metric that
    is missing."""
    for name in names:
        check_metric(option, name, metrics, key=name.removeprefix("eval_"))
    return score_mean([float(metrics[name.removeprefix("eval_")]) for name in names])


def score_mean(values: Sequence[float]) -> float:
    """The mean of scores summed exactly (``math.fsum``) at :data:`SCORE_DIGITS` significant digits
    (:func:`score_digits`): means equal mathematically tie, whatever order the floats come in; with a NaN or inf (which
    ``fsum`` refuses beside ``-inf``), or no value, ``np.mean``'s."""
    if not values or not all(math.isfinite(v) for v in values):
        return float(np.mean(values))
    return score_digits(math.fsum(values) / len(values))


#: How the guard metrics are compared with step 0's: their mean, or each one.
GUARD_MODES = ("mean", "each")


def check_guard_mode(mode: str) -> None:
    """ConfigError naming ``selection_guard_mode`` unless ``mode`` is one of :data:`GUARD_MODES`."""
    if mode not in GUARD_MODES:
        raise ConfigError(f"selection_guard_mode: {mode!r} is not one of {', '.join(GUARD_MODES)}")


def guard_holds(
    values: Mapping[str, float],
    base: Mapping[str, float],
    names: Sequence[str],
    mode: str = "mean",
    tolerance: float = 0.0,
) -> bool:
    """Guarded selection: whether a step with metrics ``values`` keeps the guard against step 0's ``base``: the mean
    of the ``names`` metrics (``mode="mean"``), or every one of them (``"each"``), at least the base's less
    ``tolerance`` (metric keys without the ``eval_`` prefix, as in ``values``), both sides taken at
    :data:`SCORE_DIGITS` significant digits as the dev score is (:func:`score_digits`): a guard equal to the base's
    mathematically holds (0.816 >= 0.8160000000000001 refused one), and 0.52 less 0.05 is 0.47.

    A step that lets the guard (e.g. dev retrieval) fall below the base's scores exactly what the base scores, and
    since a tie keeps the earlier step (:func:`best_evaluation`) it is never selected; among the steps that keep
    the guard the best score (e.g. dev SimE-SimL agreement) wins, and step 0 (the base) always passes. With
    ``mean`` one metric's gain can pay for another's loss; ``each`` lets none fall.
    """
    check_guard_mode(mode)
    keys = [name.removeprefix("eval_") for name in names]
    if mode == "each":
        pairs = [(float(values[k]), float(base[k])) for k in keys]
    else:
        pairs = [(dev_score(values, keys, "selection_guard"), dev_score(base, keys, "selection_guard"))]
    return all(score_digits(value) >= score_digits(floor - tolerance) for value, floor in pairs)


def best_evaluation(history: Sequence[tuple[int, float]], greater_is_better: bool = True) -> tuple[int, float]:
    """``(step, value)`` of the best evaluation in ``history`` (``(step, value)`` in step order); a tie keeps the
    earlier step, so the base weights (step 0) win ties.

    A NaN or infinite value (a collapsed model's evaluation) is never the best: NaN compares neither greater nor
    less, so a NaN first value would stay best whatever came after, and an infinite score is no real one whichever
    way is better; the best finite value wins. When no value is finite the first evaluation (step 0, the base) is
    kept, with its value: :func:`selection_warning` says so.
    """
    finite = [(step, value) for step, value in history if math.isfinite(value)]
    if not finite:
        return history[0]
    better = np.greater if greater_is_better else np.less
    best_step, best_value = finite[0]
    for step, value in finite[1:]:
        if better(value, best_value):  # strict: a tie keeps the earlier step (the base first)
            best_step, best_value = step, value
    return best_step, best_value


def selection_record(
    log_history: Sequence[Mapping[str, Any]], key: str, greater_is_better: bool, loaded_best: bool
) -> dict[str, Any] | None:
    """What a run's model selection chose, from the Trainer's log history (None when ``key`` was never logged):
    the metric, step 0's value, the best step and value, whether that is the base, and every evaluation. When no
    value is finite the best step is step 0 only where it is loaded (``loaded_best``: the base weights); otherwise
    no step was selected (best step and value None) and the run ends with its last step's weights."""
    history = [(int(e["step"]), float(e[key])) for e in log_history if key in e]
    if not history:
        return None
    best_step, best_value = best_evaluation(history, greater_is_better)
    step0 = next((value for step, value in history if step == 0), None)
    if not math.isfinite(best_value) and not (loaded_best and step0 is not None):
        best_step = best_value = None  # nothing selected, nothing loaded
    return {
        "selection_metric": key,
        "greater_is_better": bool(greater_is_better),
        "step0_metric": step0,
        "best_step": best_step,
        "best_metric": best_value,
        "selected_base": step0 is not None and best_step == 0,
        "loaded_best": bool(loaded_best),
        "evaluations": [[step, value] for step, value in history],
    }


def selection_warning(record: Mapping[str, Any], log_history: Sequence[Mapping[str, Any]]) -> str | None:
    """The one-line warning of a run's selection (:func:`selection_record`), None when a finite step was chosen over
    the base: no evaluation had a finite value, so step 0 is kept (loaded) or no step is selected; or, under
    ``loaded_best``, none beat step 0's (the best finite later value named, and how many later steps fell below step
    0's dev guard, from ``log_history``). Under ``loaded_best`` a kept step 0 means the base model's weights."""
    key, values = record["selection_metric"], [value for _, value in record["evaluations"]]
    base = bool(record["loaded_best"] and record["selected_base"])
    ends = "; the run ends with the base model's weights" if base else ""
    if not any(math.isfinite(value) for value in values):
        kept = "no step is selected; the run ends with its last step's weights"
        if record["best_step"] is not None:
            kept = f"step {record['best_step']} is kept{ends}"
        return f"model selection: no evaluation gave a finite {key} ({len(values)}, all NaN or infinite), so {kept}"
    if not base:
        return None
    later = [value for step, value in record["evaluations"] if step > 0]
    best_later = max if record["greater_is_better"] else min
    failed = [e for e in log_history if e.get("step", 0) > 0 and e.get("eval_dev_guard_passed") == 0]
    guard = f"; {len(failed)} of {len(later)} later steps fell below step 0's dev guard" if failed else ""
    best = best_later((value for value in later if math.isfinite(value)), default=float("nan"))
    step0 = record["step0_metric"]
    return f"model selection: no evaluation beat step 0 ({key} = {step0:.4f}, best later {best:.4f}{guard}){ends}"


def selection_summary(selection: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``training_summary.json`` keys of a run's model selection (all None when nothing was selected)."""
    selection = selection or {}
    return {
        "selection_metric": selection.get("selection_metric"),
        "best_step": selection.get("best_step"),
        "best_metric": selection.get("best_metric"),
        "step0_metric": selection.get("step0_metric"),
        "selected_base": selection.get("selected_base"),
        "selection": dict(selection) or None,
    }


#: The run-folder file of :func:`evaluation_rows` (every evaluation during training, step 0 included).
EVALUATIONS_NAME = "dev_evaluations.json"
#: Per-evaluation timings the Trainer logs beside the metrics; a record of what was measured leaves them out.
TIMING_KEYS = frozenset({"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})


def evaluation_rows(log_history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every evaluation of a run, in step order, from the Trainer's log history: ``step`` and the ``eval_*`` metrics
    (selection score and guard included, timings left out); the rows of ``dev_evaluations.json``."""
    rows = []
    for entry in log_history:
        metrics = {k: v for k, v in entry.items() if k.startswith("eval_") and k not in TIMING_KEYS}
        if metrics:
            rows.append({**dict(sorted(metrics.items())), "step": int(entry["step"])})
    return rows


def read_evaluation_rows(rows: Any) -> Any:
    """``dev_evaluations.json``'s rows (:func:`evaluation_rows`) as they were logged: each ``eval_*`` ``null`` is NaN
    (written ``null``: JSON has no NaN). A value that is not a list of objects is returned as it is, for its reader
    to refuse."""
    if not isinstance(rows, list):
        return rows
    return [
        {k: nan_for_null(v) if k.startswith("eval_") else v for k, v in row.items()} if isinstance(row, dict) else row
        for row in rows
    ]


def _scores_read(record: Mapping[str, Any], scores: Mapping[int, Any]) -> dict[str, Any]:
    """``best_metric`` and ``step0_metric`` of ``record`` read back as NaN where ``null`` stands for one: the score
    its step (``best_step``, step 0) has among the evaluations (``scores``, by step) is not finite; else as they
    are (a kept step without its score stays None)."""
    read = dict(record)
    for key, step in (("best_metric", read.get("best_step")), ("step0_metric", 0)):
        value = scores.get(step) if is_int(step) else None
        if key in read and read[key] is None and isinstance(value, float) and not math.isfinite(value):
            read[key] = math.nan
    return read


def _scores_by_step(pairs: Any) -> dict[int, Any]:
    """``{step: score}`` of the ``[step, score]`` pairs of a selection's ``evaluations`` (others skipped)."""
    pairs = pairs if isinstance(pairs, list) else []
    return {pair[0]: pair[1] for pair in pairs if isinstance(pair, list) and len(pair) == 2 and is_int(pair[0])}


def read_selection(record: Any) -> Any:
    """A ``selection`` record (:func:`selection_record`) as it was made: written, each non-finite score is ``null``
    (JSON has no NaN), so a ``null`` where a score was measured is NaN: each ``evaluations`` pair's, and
    ``best_metric`` and ``step0_metric`` where their step's evaluation is. A ``null`` ``best_step`` (nothing kept), or
    a score its step's evaluation does not back, stays None; a record of an earlier release (``NaN``) reads as it
    is, and anything not of the record's shape is returned as it is, for its reader to refuse."""
    if not isinstance(record, Mapping):
        return record
    read = dict(record)
    pairs = read.get("evaluations")
    if isinstance(pairs, list):
        read["evaluations"] = [
            [pair[0], nan_for_null(pair[1])] if isinstance(pair, list) and len(pair) == 2 else pair for pair in pairs
        ]
    return _scores_read(read, _scores_by_step(read.get("evaluations")))


def read_summary(summary: Any) -> Any:
    """A ``training_summary.json`` value with its selection's scores read back (:func:`read_selection`), its top-level
    copies (:func:`selection_summary`) by the same rule; anything but a JSON object is returned as it is."""
    if not isinstance(summary, Mapping):
        return summary
    selection = read_selection(summary.get("selection"))
    read = _scores_read(
        summary, _scores_by_step(selection.get("evaluations") if isinstance(selection, Mapping) else None)
    )
    if "selection" in read:
        read["selection"] = selection
    return read
