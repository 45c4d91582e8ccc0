"""The study's statistics: mean ± sample std over seeds, Δ between rows, the noise rule, targets, the best run, and
each variant's Δ against the base with a paired-bootstrap interval over the test items.

:func:`aggregate` turns the runs' evaluation records into the ``results.json`` record that
:mod:`biohicl.study.report` renders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from biohicl.errors import DataError
from biohicl.jsonio import read_json
from biohicl.provenance import UNKNOWN_SOURCE
from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.dev_pick import Summaries, pick_variant
from biohicl.study.plan import BASE, TRAINING_DONE_NAME, Records, RunKey, run_dir_for, run_label
from biohicl.study.verdict import verdict

#: Version of the ``results.json`` layout.
RESULTS_FORMAT = 1


NOISE_FACTOR = 2.0
NOISE_RULE = (
    "A difference Δ between two rows is marked † when |Δ| > 2·s_pooled, where s_pooled is the pooled sample "
    "standard deviation over seeds of the rows that have ≥ 2 seeds (s_pooled² = Σ(n_i − 1)s_i² / Σ(n_i − 1)); the "
    "untrained base is deterministic and adds no variance. When neither row has ≥ 2 seeds the noise is unknown "
    "and the difference is left unmarked (shown with ?)."
)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def pooled_std(groups: Sequence[tuple[int, float | None]]) -> float | None:
    """Pooled sample std over ``(n, std)`` groups with n ≥ 2; None when there is none."""
    num = sum((n - 1) * s**2 for n, s in groups if n >= 2 and s is not None)
    dof = sum(n - 1 for n, s in groups if n >= 2 and s is not None)
    return math.sqrt(num / dof) if dof else None


def compare(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    """Δ = b − a for ``metric`` between two aggregated rows, with the noise level and whether |Δ| exceeds it (None
    when the noise is unknown, or the Δ or the noise is undefined: a NaN is neither above nor below it)."""
    if metric not in a["mean"] or metric not in b["mean"]:
        return None
    delta = b["mean"][metric] - a["mean"][metric]
    noise = pooled_std([(_count(a, metric), a["std"].get(metric)), (_count(b, metric), b["std"].get(metric))])
    threshold = None if noise is None else NOISE_FACTOR * noise
    return {
        "delta": delta,
        "noise_std": noise,
        "threshold": threshold,
        "exceeds_noise": None if threshold is None or not math.isfinite(delta + threshold) else abs(delta) > threshold,
    }


def _count(row: Mapping[str, Any], metric: str) -> int:
    """How many seeds of an aggregated row have ``metric`` (fewer than ``n`` when a seed lacks one of its tasks)."""
    values = row.get("values", {})
    return len(values[metric]) if metric in values else row["n"]


def aggregate_row(per_seed: Mapping[int | None, Mapping[str, float]]) -> dict[str, Any]:
    """``{seed: {metric: value}}`` → ``{n, seeds, mean, std, values}``."""
    metrics = sorted({m for values in per_seed.values() for m in values})
    row: dict[str, Any] = {"n": len(per_seed), "seeds": [s for s in per_seed], "mean": {}, "std": {}, "values": {}}
    for metric in metrics:
        values = [per_seed[s][metric] for s in per_seed if metric in per_seed[s]]
        mean, std = mean_std(values)
        row["mean"][metric], row["values"][metric] = mean, values
        if std is not None:
            row["std"][metric] = std
    return row


def aggregate(
    config: ReproduceConfig,
    records: Records,
    dataset_summary: Mapping[str, Any] | None = None,
    training_summaries: Summaries | None = None,
) -> dict[str, Any]:
    """The ``results.json`` record: per model, per variant, mean ± std over seeds, deltas, noise marks, targets, and
    with ``pick_variant_on_dev`` the variant the runs' ``training_summaries`` pick (:mod:`biohicl.study.dev_pick`).
    A target's ``met`` is its arithmetic (Δ at or above it); ``verdict`` says whether this report judges the targets
    at all (:mod:`biohicl.study.verdict`: the config's own seeds, the dev pick among all its target variants)."""
    models: dict[str, Any] = {}
    targets = []
    for spec in config.models:
        base = records.get((spec.name, BASE, None))
        rows: dict[str, Any] = {}
        main_metrics: list[str] = []
        if base is not None:
            rows[BASE] = aggregate_row({None: base["summary"]})
            rows[BASE]["seeds"] = []
            main_metrics = _main_metrics(base)
        for variant in config.model_variants(spec):
            per_seed = {
                seed: records[(spec.name, variant, seed)]["summary"]
                for seed in config.run_seeds(spec, variant)
                if (spec.name, variant, seed) in records
            }
            if per_seed:
                rows[variant] = aggregate_row(per_seed)
                if not main_metrics:
                    main_metrics = _main_metrics(records[(spec.name, variant, next(iter(per_seed)))])
        for variant, row in rows.items():
            if variant == BASE:
                continue
            row["vs_base"] = {m: compare(rows[BASE], row, m) for m in row["mean"]} if BASE in rows else {}
            if variant != "full" and "full" in rows:
                row["vs_full"] = {m: compare(rows["full"], row, m) for m in row["mean"]}
            if base is not None and (paired := paired_rows(config, base, records, spec, variant)):
                row["paired"] = paired
        best = _best_full_run(config, spec, records, main_metrics)
        models[spec.name] = {
            "model": spec.hub_id or spec.model,
            "tasks": config.model_tasks(spec),
            "main_metrics": main_metrics,
            "rows": rows,
            "best_full_run": best,
        }
        picked = None
        if config.pick_variant_on_dev:
            models[spec.name]["dev_pick"] = pick_variant(config, spec, training_summaries or {})
            picked = models[spec.name]["dev_pick"]["picked"]
        if BASE in rows:
            for variant in config.judged_variants(spec):
                if variant in rows:
                    entries = variant_targets(config, spec.name, variant, rows)
                    targets += [{**e, "dev_pick": True} for e in entries] if variant == picked else entries
        for variant, row in rows.items():
            if variant in (BASE, "full") or "full" not in rows:
                continue
            for metric in main_metrics:
                comparison = row["vs_full"].get(metric)
                if comparison is not None:
                    targets.append({
                        "model": spec.name, "variant": "full", "metric": metric, "target": f"full ≥ {variant}",
                        "delta": -comparison["delta"], "met": comparison["delta"] <= 0,
                        "exceeds_noise": comparison["exceeds_noise"],
                    })  # fmt: skip
    return {
        "format": RESULTS_FORMAT,
        "title": config.title,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "noise_rule": NOISE_RULE,
        # the build's read report names machine paths and examples: keep the counts only
        "dataset": {k: v for k, v in (dataset_summary or {}).items() if k != "read"},
        "config": config.to_dict(),
        "models": models,
        "targets": targets,
        "verdict": verdict(config, models),  # whether "met" and the dev pick's rows are a verdict, or numbers only
        "code_versions": code_versions(records, training_sources(config, records, training_summaries)),
    }


def training_sources(
    config: ReproduceConfig, records: Records, summaries: Summaries | None = None
) -> dict[RunKey, list[str]]:
    """The code digests each trained run of ``records`` was trained by: its ``training_summary.json``'s
    ``biohicl_source`` list, from ``summaries`` where they have the run, else read from its run folder (none for a
    summary written before it was kept, or one that cannot be read)."""
    found: dict[RunKey, list[str]] = {}
    for key in records:
        if key[1] == BASE:
            continue
        summary = (summaries or {}).get(key)
        if summary is None:
            try:
                summary = read_json(run_dir_for(config, *key) / TRAINING_DONE_NAME, default=None)
            except DataError:
                summary = None
        listed = summary.get("biohicl_source") if isinstance(summary, Mapping) else None
        listed = [listed] if isinstance(listed, str) else listed if isinstance(listed, list) else []
        found[key] = [source for source in listed if isinstance(source, str) and source]
    return found


def code_versions(records: Records, trained: Mapping[RunKey, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """``{biohicl_source digest: [run labels]}``: each run under every code that trained it (``trained``, its
    training summary's list: :func:`training_sources`) or evaluated it (its record, and tasks added to the record
    later, its ``added`` entries, by their own digest), so a study resumed across code changes shows which runs each
    code made. Records made before the digest was kept are filed under ``unknown``, last."""
    found: dict[str, list[str]] = {}
    for key, record in records.items():
        digests = [(e.get("versions") or {}).get("biohicl_source") for e in (record, *record.get("added", []))]
        evaluated = [d if isinstance(d, str) and d else UNKNOWN_SOURCE for d in digests]  # a crafted one: unknown
        for source in (*(trained or {}).get(key, ()), *evaluated):
            labels = found.setdefault(source, [])
            if run_label(key) not in labels:
                labels.append(run_label(key))
    return {s: found[s] for s in sorted(found, key=lambda s: s == UNKNOWN_SOURCE)}


def reaches(delta: float, target: float) -> bool:
    """``delta ≥ target``, a Δ on the target by exact arithmetic (+1.0 point as 0.0099999...) counting as on it."""
    from biohicl.evaluation.significance import ROUNDING

    return delta >= target - ROUNDING


def variant_targets(config: ReproduceConfig, model: str, variant: str, rows: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``variant``'s Δ against the base (its seeds' mean) judged against each of ``config.targets``, then, with a
    ``target_mean``, the mean of those Δs against it: its noise mark from the spread of each seed's mean, and
    ``p_target`` from the row's paired bootstrap when there is one (the share of resampled test sets at or above; None
    where it is undefined). A Δ that is NaN (a collapsed seed's metric) is not met."""
    row, entries = rows[variant], []
    for metric, minimum in config.targets.items():
        comparison = row["vs_base"].get(metric)
        if comparison is not None:
            entries.append({
                "model": model, "variant": variant, "metric": metric, "target": minimum, "delta": comparison["delta"],
                "met": reaches(comparison["delta"], minimum), "exceeds_noise": comparison["exceeds_noise"],
            })  # fmt: skip
    if config.target_mean is None or not entries:
        return entries
    metrics = [e["metric"] for e in entries]
    mean = "mean of " + ", ".join(metrics)
    if all(len(row["values"][m]) == row["n"] for m in metrics):
        per_seed = {i: {mean: sum(row["values"][m][i] for m in metrics) / len(metrics)} for i in range(row["n"])}
    else:  # a seed lacks one of the metrics: the mean of the means, its noise unknown
        per_seed = {0: {mean: sum(row["mean"][m] for m in metrics) / len(metrics)}}
    base = aggregate_row({None: {mean: sum(rows[BASE]["mean"][m] for m in metrics) / len(metrics)}})
    comparison = compare(base, aggregate_row(per_seed), mean)
    share = _mean_share(row.get("paired") or [], metrics)
    entries.append({
        "model": model, "variant": variant, "metric": mean, "target": config.target_mean,
        "delta": comparison["delta"], "met": reaches(comparison["delta"], config.target_mean),
        "exceeds_noise": comparison["exceeds_noise"], "p_target": share,
    })  # fmt: skip
    return entries


def _mean_share(paired: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> float | None:
    """``p_target`` of the paired rows' last (the tasks' mean, or the one task) when their tasks' metrics are the
    ``metrics`` the targets' mean is over; None otherwise (a target off its task's main metric is not paired: the
    share would be another mean's), or where it is NaN (the paired mean row has none: a collapsed seed)."""
    from biohicl.evaluation.results import summary_key
    from biohicl.evaluation.significance import MEAN_ROW

    if [summary_key(p["task"], p["metric"]) for p in paired if p["task"] != MEAN_ROW] != list(metrics):
        return None
    share = paired[-1].get("p_target")
    return share if share is None or math.isfinite(share) else None


def paired_tasks(config: ReproduceConfig, record: Mapping[str, Any]) -> list[str]:
    """The tasks the targets name by their main metric (``biosses/spearman`` → ``biosses``), in the targets' order:
    the held-out tasks whose Δ the paired bootstrap tests."""
    from biohicl.evaluation.results import split_summary_key

    tasks = []
    for key in config.targets:
        task, metric = split_summary_key(key)
        if record.get("tasks", {}).get(task, {}).get("main_metric") == metric and task not in tasks:
            tasks.append(task)
    return tasks


def paired_rows(
    config: ReproduceConfig, base: Mapping[str, Any], records: Records, spec: ModelSpec, variant: str
) -> list[dict[str, Any]] | None:
    """Δ of ``variant`` (its seeds' mean) against the base on the targets' tasks, each with its 95% paired-bootstrap
    interval over the test items and the tasks' mean (:func:`biohicl.evaluation.significance.compare_records`, the
    records named by their run labels: a task without a Δ names the collapsed seed's); None when a record lacks
    per-item values (evaluated before the study kept them)."""
    from biohicl.evaluation.significance import compare_records, has_item_values

    keys = [key for s in config.run_seeds(spec, variant) if (key := (spec.name, variant, s)) in records]
    seeds, tasks = [records[key] for key in keys], paired_tasks(config, base)
    if not seeds or not tasks or not all(has_item_values(r, t) for r in (base, *seeds) for t in tasks):
        return None
    # a variant's max length or prompts are its treatment, not a scoring difference: only data, split and cap count
    labels = [run_label((spec.name, BASE, None)), *map(run_label, keys)]
    rows = compare_records(base, seeds, tasks=tasks, sources=labels, target=config.target_mean, settings=False)
    return [row.to_dict() for row in rows]


def _main_metrics(record: Mapping[str, Any]) -> list[str]:
    """The ``summary`` keys of the main metric of each task of an evaluation record."""
    from biohicl.evaluation.results import summary_key

    return [summary_key(task, result["main_metric"]) for task, result in record["tasks"].items()]


def _best_full_run(
    config: ReproduceConfig, spec: ModelSpec, records: Records, main_metrics: Sequence[str]
) -> dict[str, Any] | None:
    """The `full` seed with the highest mean of its main metrics (the one to publish); a seed whose mean is NaN (a
    collapsed seed's Spearman) is none (max() kept a first NaN), nor is one that has none of them."""
    scored = []
    for seed in config.run_seeds(spec, "full") if "full" in config.model_variants(spec) else []:
        record = records.get((spec.name, "full", seed))
        if record is None or not main_metrics:
            continue
        values = [record["summary"][m] for m in main_metrics if m in record["summary"]]
        if values and math.isfinite(score := sum(values) / len(values)):  # none of them: no score
            scored.append((score, seed))
    if not scored:
        return None
    score, seed = max(scored)
    return {"seed": seed, "mean_main_metric": score, "run_dir": str(run_dir_for(config, spec.name, "full", seed))}
