"""Is a gain bigger than the test set can tell? A paired bootstrap over a task's items, base against tuned.

The study's noise rule (:data:`biohicl.study.stats.NOISE_RULE`) asks whether a Δ exceeds the spread between seeds.
This asks the other question: with this many test items, would another test set of the same size show the gain
too? Each round draws the task's items with replacement (the same draw for every model, so the comparison stays
paired) and recomputes each model's metric on the draw: the mean of the queries' scores for retrieval (R@1,
nDCG@10), Spearman's correlation of the pairs' predicted similarities with their gold scores for STS. The interval
is the percentile interval of Δ = tuned − base over the rounds, and ``p_no_gain`` the share of rounds with Δ ≤ 0
(paired bootstrap resampling, Koehn 2004).

Several tuned models (seeds of one recipe) count as their mean Δ on each draw, and several base models (the seeds of
another recipe, to compare two recipes) as their mean metric; several tasks count as the mean of their Δs, each task
drawn on its own since the test sets are independent (the "Δ mean of the two" of docs/results.md).
With ``resample_models`` each round also draws each side's models with replacement (the same draw for every task),
so the interval covers another set of seeds as well as another test set: a two-level bootstrap, seeds × items. With
``target`` each row also gives ``p_target``, the share of rounds with Δ ≥ target (e.g. 0.01 for a one-point target).
The per-item values come from results records written with ``per_item`` (``biohicl evaluate --per_item``).

>>> rows = compare_records(base_record, [tuned_record], rounds=10_000)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.comparison import check_comparable
from biohicl.evaluation.results import signed

CITATION = """@inproceedings{koehn2004statistical,
  title = {Statistical Significance Tests for Machine Translation Evaluation},
  author = {Koehn, Philipp},
  booktitle = {Proceedings of EMNLP 2004},
  pages = {388--395},
  year = {2004}
}"""
#: The row that averages the tasks' Δs (each task resampled on its own).
MEAN_ROW = "mean of the tasks"
#: Rounds drawn at once: bounds the index matrix to ``ROUND_BLOCK × items`` integers.
ROUND_BLOCK = 1000
#: A round's Δ this close to 0 or to the target counts as on it: a draw whose Δ is exactly the target (two questions
#: of ten) comes out a rounding error either side of it (0.6 − 0.4 = 0.19999999999999996).
ROUNDING = 1e-12
#: Why a round has no Δ although every model's metric on the whole test set has one.
UNDEFINED_ROUND = "a resample whose predictions or gold scores are all tied has no {metric}"


@dataclass(frozen=True)
class ItemValues:
    """One model's values on the items of one task: each query's metric, or each STS pair's predicted similarity
    with its gold score."""

    task: str
    metric: str
    ids: tuple[str, ...]
    scores: np.ndarray
    gold: np.ndarray | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any], task: str, source: str | Path = "") -> ItemValues:
        """The values a results record kept for ``task``; :class:`DataError` naming the file when it kept none."""
        result = record.get("tasks", {}).get(task)
        if result is None:
            raise DataError(f"no task {task!r} in this results record", source or None)
        items = result.get("per_item") or {}
        if "ids" not in items:
            raise DataError(f"{task}: no per-item values (evaluate with --per_item to keep them)", source or None)
        sts = "gold" in items
        scores = np.asarray(items["predictions" if sts else "scores"], dtype=np.float64)
        gold = np.asarray(items["gold"], dtype=np.float64) if sts else None
        if len(scores) != len(items["ids"]) or (gold is not None and len(gold) != len(scores)):
            raise DataError(f"{task}: per-item lists of different lengths", source or None)
        metric = "spearman" if sts else result.get("main_metric", "")
        return cls(task=task, metric=metric, ids=tuple(items["ids"]), scores=scores, gold=gold)

    def metric_on(self, draws: np.ndarray) -> np.ndarray:
        """The metric on each row of ``draws`` (rounds × items, item positions); one value per round."""
        values = self.scores[draws]
        return values.mean(axis=1) if self.gold is None else spearman_rows(values, self.gold[draws])

    def full_metric(self) -> float:
        """The metric on all items once (the value the results record reports)."""
        return float(self.metric_on(np.arange(len(self.ids))[None, :])[0])


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row of ``x`` with the same row of ``y`` (average ranks for ties, as ``scipy.stats``)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw of one repeated pair has no correlation
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


@dataclass
class PairedDelta:
    """Δ of one task's metric (or of the tasks' mean) between the tuned models and their base, with its interval.

    ``base`` is the base's metric, the mean of ``base_models`` models' when the base is the seeds of a recipe;
    ``models_resampled`` says whether the rounds drew the models too (two-level), ``p_target`` is the share of rounds
    with Δ ≥ ``target`` (None without a target). ``rounds`` were drawn; ``undefined_rounds`` of them have no Δ
    (:data:`UNDEFINED_ROUND`) and are left out of the interval and the shares. ``undefined`` says why the row has none
    of them (all NaN): a model whose metric on the whole test set is NaN (a collapsed model's constant or non-finite
    predictions; :data:`MEAN_ROW`: a task without a Δ), or a Δ undefined in every round; None for a row with them."""

    task: str
    metric: str
    items: int
    base: float
    tuned: list[float]
    delta: float
    low: float
    high: float
    p_no_gain: float
    rounds: int
    confidence: float
    base_models: int = 1
    models_resampled: bool = False
    target: float | None = None
    p_target: float | None = None
    undefined_rounds: int = 0
    undefined: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_same_items(base: ItemValues, other: ItemValues) -> None:
    if other.ids != base.ids:
        raise DataError(
            f"{base.task}: the records scored different items ({len(base.ids)} and {len(other.ids)}, or in another "
            "order); compare evaluations of the same split"
        )
    if base.gold is not None and (other.gold is None or not np.array_equal(base.gold, other.gold)):
        raise DataError(f"{base.task}: the records hold different gold scores; compare evaluations of the same file")


#: ``(base, tuned)`` model positions per round, from :func:`draw_models`.
ModelDraws = tuple[np.ndarray, np.ndarray]


def draw_models(base_count: int, tuned_count: int, rounds: int, rng: np.random.Generator) -> ModelDraws:
    """Which base and tuned models each round counts (rounds × models, with replacement), for a two-level
    bootstrap; drawn once and shared by every task, since one seed is one model on all of them."""
    return rng.integers(0, base_count, size=(rounds, base_count)), rng.integers(0, tuned_count, (rounds, tuned_count))


def bootstrap_deltas(
    base: ItemValues | Sequence[ItemValues],
    tuned: Sequence[ItemValues],
    rounds: int,
    rng: np.random.Generator,
    models: ModelDraws | None = None,
) -> np.ndarray:
    """Δ (mean over the tuned models, against the mean over the base models) of ``rounds`` paired resamples of the
    items, one value per round; ``models`` (:func:`draw_models`) picks which models each round counts."""
    bases = [base] if isinstance(base, ItemValues) else list(base)
    for other in [*bases[1:], *tuned]:
        _check_same_items(bases[0], other)
    n = len(bases[0].ids)
    deltas = np.empty(rounds)
    for start in range(0, rounds, ROUND_BLOCK):
        draws = rng.integers(0, n, size=(min(ROUND_BLOCK, rounds - start), n))
        base_values = np.array([model.metric_on(draws) for model in bases])  # models × rounds
        tuned_values = np.array([model.metric_on(draws) for model in tuned])
        if models is not None:
            block = slice(start, start + len(draws))
            columns = np.arange(len(draws))[:, None]
            base_values, tuned_values = (
                base_values[models[0][block], columns].T,
                tuned_values[models[1][block], columns].T,
            )
        reference = base_values.mean(axis=0)
        deltas[start : start + len(draws)] = np.mean(tuned_values - reference, axis=0)
    return deltas


def _summarise(
    task: str,
    metric: str,
    items: int,
    base: float,
    tuned: list[float],
    deltas: np.ndarray,
    confidence: float,
    base_models: int,
    models_resampled: bool,
    target: float | None,
    undefined: str | None = None,
) -> PairedDelta:
    """The row of ``deltas`` (one per round): a round without a Δ is left out (counted); a row with ``undefined`` (or
    without any round left) has NaN bounds and shares."""
    finite = deltas[np.isfinite(deltas)]
    if undefined is None and not finite.size:
        undefined = f"Δ is undefined in every round ({UNDEFINED_ROUND.format(metric=metric)})"
    tail, nan = (1 - confidence) / 2, float("nan")
    low, high = (nan, nan) if undefined else np.quantile(finite, [tail, 1 - tail])
    return PairedDelta(
        task=task,
        metric=metric,
        items=items,
        base=base,
        tuned=tuned,
        delta=float(np.mean(tuned) - base),
        low=float(low),
        high=float(high),
        p_no_gain=nan if undefined else float(np.mean(finite <= ROUNDING)),
        rounds=len(deltas),
        confidence=confidence,
        base_models=base_models,
        models_resampled=models_resampled,
        target=target,
        p_target=None if target is None else nan if undefined else float(np.mean(finite >= target - ROUNDING)),
        undefined_rounds=len(deltas) if undefined else len(deltas) - len(finite),
        undefined=undefined,
    )


def _undefined_models(metric: str, sts: bool, labels: Sequence[str], values: Sequence[float]) -> str | None:
    """Why a task has no Δ: the models (of ``labels``) whose metric on the whole test set is not finite; None when
    every model's is."""
    if not (names := [label for label, value in zip(labels, values, strict=True) if not math.isfinite(value)]):
        return None
    (verb, their) = ("is", "its") if len(names) == 1 else ("are", "their")
    why = "predictions are constant or not finite" if sts else "scores are not finite"
    return f"the {metric} of {', '.join(names)} {verb} NaN ({their} {why}: a collapsed model?)"


def check_target(target: float | None) -> None:
    """A :class:`ConfigError` for a ``target`` that is NaN or infinite (``--target nan`` gave ``P(Δ ≥ +nan)`` 0)."""
    if target is not None and not math.isfinite(target):
        raise ConfigError(f"target: {target} is not a finite number")


def paired_bootstrap(
    base: Mapping[str, ItemValues] | Sequence[Mapping[str, ItemValues]],
    tuned: Sequence[Mapping[str, ItemValues]],
    *,
    rounds: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    resample_models: bool = False,
    target: float | None = None,
    labels: Sequence[str] = (),
) -> list[PairedDelta]:
    """One :class:`PairedDelta` per task of ``base`` (one model's values, or several models' as their mean; every
    model must hold the same items), and one :data:`MEAN_ROW` for the mean of the tasks' Δs when there are several
    tasks; ``resample_models`` draws each side's models too (two-level), ``target`` adds ``p_target``. One generator
    of ``seed`` draws for each task in turn, in ``base``'s order: the same seed and inputs (the same tasks in the same
    order, items, ``rounds``, models) give the same intervals, and a task's interval depends on the tasks before it.
    A task on which a model's metric is NaN (a collapsed model) has no Δ, interval or shares (NaN, with the reason in
    ``undefined``, naming the model by ``labels``: the base models' then the tuned ones', else their positions), and
    neither has the mean of the tasks; the other tasks' rows are those the same draws give without it."""
    if rounds < 100:
        raise ConfigError(f"rounds: {rounds} is too few for a {confidence:.0%} interval; use at least 100")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence: {confidence} is not between 0 and 1")
    check_target(target)
    if not tuned:
        raise ConfigError("compare at least one tuned model with the base")
    bases = [base] if isinstance(base, Mapping) else list(base)
    if not bases:
        raise ConfigError("compare the tuned models with at least one base model")
    if resample_models and len(bases) == 1 and len(tuned) == 1:
        raise ConfigError("resample_models: needs several models on one side (the seeds of a recipe) to resample")
    sides = [(len(bases), "base"), (len(tuned), "tuned model")]
    default = [f"the {side}" if n == 1 else f"{side} {i + 1}" for n, side in sides for i in range(n)]
    names = [given or default[i] for i, given in enumerate((list(labels) + [""] * len(default))[: len(default)])]
    rng = np.random.default_rng(seed)
    models = draw_models(len(bases), len(tuned), rounds, rng) if resample_models else None
    summary = {
        "confidence": confidence,
        "base_models": len(bases),
        "models_resampled": resample_models,
        "target": target,
    }
    rows, per_task = [], []
    for task in bases[0]:
        references = [_task_values(values, task, "base") for values in bases]
        candidates = [_task_values(values, task, "tuned") for values in tuned]
        deltas = bootstrap_deltas(references, candidates, rounds, rng, models)
        per_task.append(deltas)
        bases_full, full = [r.full_metric() for r in references], [model.full_metric() for model in candidates]
        base_value, first = float(np.mean(bases_full)), references[0]
        why = _undefined_models(first.metric, first.gold is not None, names, [*bases_full, *full])
        rows.append(_summarise(task, first.metric, len(first.ids), base_value, full, deltas, **summary, undefined=why))
    if len(rows) > 1:
        base_mean = float(np.mean([row.base for row in rows]))
        tuned_means = [float(np.mean([row.tuned[i] for row in rows])) for i in range(len(tuned))]
        items = sum(row.items for row in rows)
        metric = " + ".join(row.metric for row in rows)
        mean_deltas = np.mean(per_task, axis=0)
        lacking = [row.task for row in rows if row.undefined]
        why = f"{', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no Δ" if lacking else None
        rows.append(_summarise(MEAN_ROW, metric, items, base_mean, tuned_means, mean_deltas, **summary, undefined=why))
    return rows


def _task_values(values: Mapping[str, ItemValues], task: str, role: str) -> ItemValues:
    if task not in values:
        raise DataError(f"{task}: missing from a {role} model's values")
    return values[task]


def compare_records(
    base: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    tuned: Sequence[Mapping[str, Any]],
    *,
    tasks: Sequence[str] | None = None,
    sources: Sequence[str | Path] = (),
    rounds: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    resample_models: bool = False,
    target: float | None = None,
    settings: bool = True,
) -> list[PairedDelta]:
    """:func:`paired_bootstrap` over ``tasks`` (default: every task whose per-item values all the records kept;
    ``base``: one record, or several counted as their mean; ``sources``: the records' files, base first, for error
    messages); :class:`DataError` when there is no such task, when a task asked for has no values in one of the
    records, or when the records scored a task differently (:func:`~biohicl.evaluation.comparison.check_comparable`:
    split, data files, query cap and, unless ``settings=False``, max length and prompts)."""
    check_target(target)  # before the records are read and checked
    bases = [base] if isinstance(base, Mapping) else list(base)
    records = [*bases, *tuned]
    names = (list(sources) + [""] * len(records))[: len(records)]
    if tasks is None:
        tasks = tasks_with_item_values(records)
    if not tasks:
        raise DataError("no task has per-item values in every results file (evaluate with --per_item to keep them)")
    values = [
        {task: ItemValues.from_record(r, task, name) for task in tasks} for r, name in zip(records, names, strict=True)
    ]
    check_comparable(records, [name or f"record {i + 1}" for i, name in enumerate(names)], tasks, settings=settings)
    return paired_bootstrap(
        values[: len(bases)],
        values[len(bases) :],
        rounds=rounds,
        confidence=confidence,
        seed=seed,
        resample_models=resample_models,
        target=target,
        labels=names,
    )


def has_item_values(record: Mapping[str, Any], task: str) -> bool:
    """Whether a results record kept per-item values for ``task``."""
    return bool((record.get("tasks", {}).get(task) or {}).get("per_item"))


def tasks_with_item_values(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The tasks of the first record whose per-item values every record kept, in its order."""
    return [task for task in records[0].get("tasks", {}) if all(has_item_values(r, task) for r in records)]


def markdown_paired(rows: Sequence[PairedDelta], names: tuple[str, str] = ("base", "tuned")) -> str:
    """A Markdown table of :func:`paired_bootstrap`'s rows, Δ and its interval in points (× 100); ``names`` head the
    base's and the tuned models' columns."""
    if not rows:
        return ""
    first = rows[0]
    base_name, tuned_name = names
    target = "" if first.target is None else f" P(Δ ≥ {signed(100 * first.target)}) |"
    lines = [
        f"| task | metric | items | {base_name} | {tuned_name} | Δ (points) | {first.confidence:.0%} interval | "
        f"P(Δ ≤ 0) |{target}",
        "|---|---|---:|---:|---:|---:|---|---:|" + ("---:|" if target else ""),
    ]
    for row in rows:
        tuned = _shown(np.mean(row.tuned), ".4f") + (f" (mean of {len(row.tuned)})" if len(row.tuned) > 1 else "")
        base = _shown(row.base, ".4f") + (f" (mean of {row.base_models})" if row.base_models > 1 else "")
        interval = "–" if row.undefined else f"[{signed(100 * row.low)}, {signed(100 * row.high)}]"
        lines.append(
            f"| {row.task} | {row.metric} | {row.items} | {base} | {tuned} | {_shown(100 * row.delta, signed)} | "
            f"{interval} | {_shown(row.p_no_gain, '.4f')} |"
            + ("" if row.p_target is None else f" {_shown(row.p_target, '.4f')} |")
        )
    lines.append("")
    over = "the models on each side and the items (two-level)" if first.models_resampled else "the items"
    lines.append(f"Paired bootstrap over {over}, {first.rounds:,} rounds (Koehn, 2004).")
    return "\n".join(lines + [note for row in rows if (note := undefined_note(row))]) + "\n"


def _shown(value: float, style: Any) -> str:
    """``value`` in ``style`` (a format spec or a function), – when it is NaN (undefined, as a table's null metric)."""
    return "–" if not math.isfinite(value) else style(value) if callable(style) else format(value, style)


def undefined_note(row: PairedDelta) -> str | None:
    """The line under a table saying why ``row`` has no Δ or interval (``undefined``), or how many of its rounds had
    no Δ and were left out; None for a row every round of which has one."""
    if row.undefined:
        return f"note: {row.task} has no {'Δ' if math.isnan(row.delta) else 'interval'}: {row.undefined}"
    if not row.undefined_rounds:
        return None
    kept, why = row.rounds - row.undefined_rounds, UNDEFINED_ROUND.format(metric=row.metric)
    why = "a task's Δ is undefined in them" if row.task == MEAN_ROW else why
    return (
        f"note: {row.task}: Δ is undefined in {row.undefined_rounds:,} of the {row.rounds:,} rounds ({why}); "
        f"its interval and P are over the other {kept:,}"
    )
