"""The study's report: ``results.md`` tables, written with the bar / Δ / training-curve PNGs of
:mod:`biohicl.study.figures` (model cards: :mod:`biohicl.study.cards`).

Everything here renders the ``results.json`` record of :func:`biohicl.study.stats.aggregate`; nothing is computed
again. A value that is undefined (NaN in process, ``null`` in ``results.json``: a collapsed seed's Spearman, and every
mean and Δ over it) is shown as –, with a note under its table saying why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.atomic import atomic_write_json, atomic_write_text
from biohicl.evaluation.results import signed
from biohicl.provenance import UNKNOWN_SOURCE
from biohicl.study.config import ReproduceConfig
from biohicl.study.figures import plot_bars, plot_curves, plot_deltas
from biohicl.study.plan import BASE
from biohicl.study.stats import NOISE_RULE

if TYPE_CHECKING:
    from biohicl.evaluation.significance import PairedDelta


def _defined(value: float | None) -> bool:
    """Whether ``value`` is a number to show: neither NaN (in process) nor None (a NaN kept as ``null`` in
    ``results.json``)."""
    return value is not None and math.isfinite(value)


def _points(value: float | None, digits: int = 2) -> str:
    """``value`` ×100 with its sign (:func:`signed`), – when it is undefined."""
    return signed(100 * value, digits) if _defined(value) else "–"


def _share(value: float | None) -> str:
    """A share of bootstrap rounds at 3 decimals, – when it is undefined."""
    return f"{value:.3f}" if _defined(value) else "–"


def _cell(
    row: Mapping[str, Any], metric: str, comparison: Mapping[str, Any] | None = None, scale: float = 100.0
) -> str:
    """``mean ± std`` (×100) of an aggregated row, ``(n=k)`` when fewer of its seeds than the row's ``n`` have the
    metric (a run's ``eval.json`` lacks its task), and ``(Δ†)`` against a reference row when given; – for a mean that is
    undefined (:func:`_undefined_means` says why), ``(–)`` for a Δ against one."""
    if metric not in row["mean"] or not _defined(row["mean"][metric]):
        return "–"
    text = f"{scale * row['mean'][metric]:.2f}"
    if metric in row["std"]:
        text += f" ± {scale * row['std'][metric]:.2f}"
    if (count := len(row.get("values", {}).get(metric, ()))) and count != row["n"]:
        text += f" (n={count})"
    if comparison is not None:
        delta = comparison["delta"]
        mark = {True: " †", False: "", None: " ?"}[comparison["exceeds_noise"]] if _defined(delta) else ""
        text += f" ({signed(scale * delta) if _defined(delta) else '–'}{mark})"
    return text


def _undefined_means(rows: Mapping[str, Any], metrics: list[str]) -> list[str]:
    """Lines under a table of ``rows``: for each row's undefined mean of ``metrics`` (shown –), the seeds whose value
    is NaN (a collapsed run's constant predictions have no Spearman)."""
    from biohicl.evaluation.report import summary_label

    notes = []
    for variant, row in rows.items():
        for metric in metrics:
            values, seeds = row.get("values", {}).get(metric, []), row.get("seeds") or []
            if not (nan := [i for i, value in enumerate(values) if not _defined(value)]):
                continue
            many = len(nan) > 1
            scores, verb = ("scores", "are") if many else ("score", "is")
            if not seeds:  # the base: one run
                which = f"its score {verb}"
            elif len(seeds) == len(values):  # every seed has the metric: the values are theirs, in order
                which = f"the {scores} of seed{'s' if many else ''} {', '.join(str(seeds[i]) for i in nan)} {verb}"
            else:
                which = f"the {scores} of {len(nan)} of its {len(values)} seeds {verb}"
            notes.append(f"note: {variant} has no {summary_label(metric)} mean: {which} NaN (a collapsed run?)")
    return ["", *notes] if notes else []


def _paired_table(rows: Mapping[str, Any]) -> list[str]:
    """Lines of the table of each variant's Δ against the base with its paired-bootstrap interval (×100); – where a
    row has none, and under the table the line :func:`~biohicl.evaluation.significance.undefined_note` gives why
    (naming the collapsed seed's run), prefixed with the variant."""
    from biohicl.evaluation.significance import undefined_note

    paired = {variant: row["paired"] for variant, row in rows.items() if row.get("paired")}
    if not paired:
        return []
    first = next(iter(paired.values()))
    tasks = [entry["task"] for entry in first]
    confidence, rounds, target = first[0]["confidence"], first[0]["rounds"], first[-1].get("target")
    at_target = "" if target is None else f" P(Δ ≥ {signed(100 * target, 1)}) |"
    lines = [
        "",
        f"Δ against the base on the targets' tasks, with its {confidence:.0%} interval over resamples of the test "
        f"items (paired bootstrap, {rounds:,} rounds; seeds as their mean Δ; P = the share of resamples in which "
        "the last column's Δ is ≤ 0, or at or above the target):",
        "",
        "| variant | n | "
        + " | ".join(f"{task} ({entry['metric']})" for task, entry in zip(tasks, first, strict=True))
        + " | P(Δ ≤ 0) |"
        + at_target,
        "|---|---:|" + "---|" * len(tasks) + "---:|" + ("---:|" if at_target else ""),
    ]
    notes = []
    for variant, entries in paired.items():
        cells = [
            _points(e["delta"]) + (f" [{_points(e['low'])}, {_points(e['high'])}]" if _defined(e["low"]) else "")
            for e in entries
        ]
        share = "" if target is None else f" {_share(entries[-1]['p_target'])} |"
        lines.append(
            f"| {variant} | {len(entries[0]['tuned'])} | "
            + " | ".join(cells)
            + f" | {_share(entries[-1]['p_no_gain'])} |"
            + share
        )
        notes += [f"note: {variant}: {note[len('note: ') :]}" for e in entries if (note := undefined_note(_row(e)))]
    return lines + (["", *notes] if notes else [])


def _row(entry: Mapping[str, Any]) -> PairedDelta:
    """A paired row of ``results.json`` as the :class:`PairedDelta` it was saved from: null (a NaN) as NaN."""
    from dataclasses import fields

    from biohicl.evaluation.significance import PairedDelta

    names, floats = {f.name for f in fields(PairedDelta)}, ("base", "delta", "low", "high", "p_no_gain")
    return PairedDelta(**{k: math.nan if k in floats and v is None else v for k, v in entry.items() if k in names})


def _dev_pick_table(pick: Mapping[str, Any]) -> list[str]:
    """The variant the dev data picks (``pick_variant_on_dev``): the rule, then one row per target variant."""
    lines = ["", "### The variant picked on dev", "", pick["rule"], ""]
    lines += ["| variant | seeds | selected steps | mean dev selection score | outcome |", "|---|---|---|---:|---|"]
    for c in pick["candidates"]:
        steps = ", ".join("–" if step is None else str(step) for step in c["selected_steps"])
        score = f"{c['score']:.4f}" if _defined(c["score"]) else "–"  # NaN: a seed kept its NaN base
        outcome = "**picked**" if c["variant"] == pick["picked"] else (c["out"] or "lower")
        lines.append(f"| {c['variant']} | {', '.join(map(str, c['seeds']))} | {steps} | {score} | {outcome} |")
    if pick["picked"] is None:
        lines += ["", "No variant is picked: every one is out."]
    if left_out := pick.get("left_out"):
        lines += [
            "",
            "The pick is among the target variants in this report only: "
            + ", ".join(f"`{v}`" for v in left_out)
            + (" was" if len(left_out) == 1 else " were")
            + " left out of this selection of the study (`--only`), and the rule over all `target_variants` may "
            "name another.",
        ]
    return lines


def _test_abstracts(data: Mapping[str, Any]) -> list[str]:
    """Where the build's summary ``data`` says PubMedQA's test abstracts are: in the dataset as its test split (never
    trained on), or left out of it (``excluded_documents``: under ``exclude_test``, or excluded PMIDs)."""
    test = data.get("test_documents", (data.get("splits") or {}).get("test"))
    excluded = data.get("excluded_documents", 0)
    parts = [f"PubMedQA's {test} test abstracts are in it as its test split, never trained on"] if test else []
    if excluded:
        parts.append(f"{excluded} documents were left out of it (PubMedQA's test abstracts under exclude_test, or "
                     "excluded PMIDs)")  # fmt: skip
    return parts


def incomplete_groups(results: Mapping[str, Any]) -> dict[str, list[str]]:
    """``results["incomplete"]`` (run → what its ``eval.json`` lacks) as "what is lacking" → runs lacking it."""
    groups: dict[str, list[str]] = {}
    for run, lacks in (results.get("incomplete") or {}).items():
        groups.setdefault(", ".join(lacks), []).append(run)
    return groups


def _md_row(cells: list[str]) -> str:
    """One markdown table row of ``cells``."""
    return "| " + " | ".join(cells) + " |"


def _md_rule(aligns: list[str]) -> str:
    """The row under a markdown table's header: ``---`` (left) or ``---:`` (right) per column."""
    return "|" + "|".join(aligns) + "|"


def _variant_table(header: list[str], metrics: list[str], rows: Mapping[str, Any], against: str) -> list[str]:
    """A table of ``rows``' main metrics, mean ± std (×100), each with its Δ against the reference row its
    ``against`` entry compares it to (``vs_base``, ``vs_full``); a row without that entry (the reference itself)
    has no Δ."""
    lines = [_md_row(header), _md_rule(["---", "---:"] + ["---:"] * len(metrics))]
    for variant, row in rows.items():
        lines.append(_md_row([variant, str(row["n"]), *(_cell(row, m, row.get(against, {}).get(m)) for m in metrics)]))
    return lines


def markdown_results(results: Mapping[str, Any]) -> str:
    """``results.md``: per model, a table of mean ± std (×100) with Δ vs the base, then Δ vs full, then targets."""
    from biohicl.evaluation.report import summary_label

    lines = [f"# {results['title']}", ""]
    data = results.get("dataset") or {}
    if data:
        splits = data.get("splits") or {}
        documents = (
            f"{data.get('documents', '?')} documents ("
            + ", ".join(f"{name} {count}" for name, count in splits.items())
            + "; only train is trained on)"
            if splits
            else f"{data.get('documents', '?')} training documents"
        )
        lines += [
            f"MeSH-pair dataset: {documents}, {data.get('pairs', '?')} mined pairs (sources {data.get('sources', {})})"
            + "".join(f"; {part}" for part in _test_abstracts(data))
            + ".",
            "",
        ]
    lines += [
        "Scores ×100, mean ± sample std over seeds (n = seeds; (n=k): a score over fewer of the row's seeds, since a "
        "run lacks its task); in brackets Δ against the reference row.",
        NOISE_RULE,
        "",
    ]
    sources = results.get("code_versions") or {}
    if (count := len([s for s in sources if s != UNKNOWN_SOURCE])) > 1:  # runs without a digest alone never warn
        made_by = "; ".join(f"`{source}` ({', '.join(labels)})" for source, labels in sources.items())
        lines += [f"**Warning**: these runs were made by {count} versions of the code: {made_by}.", ""]
    for name, model in results["models"].items():
        rows, metrics = model["rows"], model["main_metrics"]
        extra = sorted({m for row in rows.values() for m in row["mean"]} - set(metrics))
        header = ["variant", "n", *(summary_label(m) for m in metrics)]
        lines += [f"## {name}: `{model['model']}`", "", "Δ against the untrained base:", ""]
        lines += _variant_table(header, metrics, rows, "vs_base") + _undefined_means(rows, metrics)
        ablations = [v for v in rows if v not in (BASE, "full")]
        if ablations and "full" in rows:
            lines += ["", "Ablations, Δ against `full` (negative = the ablation is worse):", ""]
            lines += _variant_table(header, metrics, {v: rows[v] for v in ["full", *ablations]}, "vs_full")
        if extra:
            lines += ["", "Other metrics (mean over seeds, ×100):", ""]
            lines += [
                _md_row(["variant", *(summary_label(m) for m in extra)]),
                _md_rule(["---"] + ["---:"] * len(extra)),
            ]
            lines += [_md_row([variant, *(_cell(row, m) for m in extra)]) for variant, row in rows.items()]
            lines += _undefined_means(rows, extra)
        lines += _paired_table(rows)
        if model.get("dev_pick"):
            lines += _dev_pick_table(model["dev_pick"])
        if model.get("best_full_run"):
            best = model["best_full_run"]
            lines += ["", f"Best `full` run (highest mean main metric): seed {best['seed']} (`{best['run_dir']}`)."]
        lines.append("")
    if results.get("missing"):
        lines += ["Not run yet (no evaluation): " + ", ".join(f"`{m}`" for m in results["missing"]) + ".", ""]
    for lacks, runs in incomplete_groups(results).items():  # --report_only: tabulated without what they lack
        lines += [f"Tabulated as evaluated, lacking {lacks}: {', '.join(f'`{r}`' for r in runs)}.", ""]
    if results.get("targets"):
        lines += _targets_section(results)
    return "\n".join(lines)


def _targets_section(results: Mapping[str, Any]) -> list[str]:
    """The Targets section: each target's Δ, met, noise mark (and share at the target); when the report judges no
    target (``results["verdict"]``, :mod:`biohicl.study.verdict`), one line first says why and no row is met or
    missed. A record from before verdicts were kept renders as it was written."""
    judged, why_not = (verdict := results.get("verdict") or {}).get("judged", True), verdict.get("why_not", [])
    shares = any(t.get("p_target") is not None for t in results["targets"])
    share_note = " P(Δ ≥ target): the share of paired-bootstrap resamples of the test items at or above it."
    not_judged = [
        f"**Not judged**: {'; '.join(why_not)}. The rows are numbers only, not a verdict on the targets, and none "
        "counts as the dev pick's.",
        "",
    ]
    lines = [
        "## Targets",
        "",
        *([] if judged else not_judged),
        "Δ = variant − base (its seeds' mean) for the improvement targets, full − ablation for the others. "
        "Δ > 2·s: |Δ| above twice the pooled seed std, a comparison with 0 by the spread of the seeds only, not with "
        "the target nor with the test sets' noise." + (share_note if shares else ""),
        "",
        "| model | variant | metric | target | Δ | met | Δ > 2·s vs 0 (seed spread only) |"
        + (" P(Δ ≥ target) |" if shares else ""),
        "|---|---|---|---|---:|---|---|" + ("---:|" if shares else ""),
    ]
    for t in results["targets"]:  # a record written before targets named their variant: the full method's
        target = t["target"] if isinstance(t["target"], str) else f"Δ ≥ {signed(100 * t['target'], 1)}"
        noise = (
            {True: "yes", False: "no", None: "unknown (n = 1)"}[t.get("exceeds_noise")] if _defined(t["delta"]) else "–"
        )
        share = f" {_share(t.get('p_target'))} |" if shares else ""
        met = ("yes" if t["met"] else "**no**") if judged else "not judged"
        lines.append(
            f"| {t['model']} | {t.get('variant', 'full')} | {t['metric']} | {target} | "
            f"{_points(t['delta'])} | {met} | {noise} |{share}"
        )
    picked = [f"{t['model']}/{t.get('variant', 'full')}" for t in results["targets"] if t.get("dev_pick")]
    if picked and judged:
        lines += [
            "",
            "The targets count for the variant picked on dev: "
            + ", ".join(f"`{p}`" for p in dict.fromkeys(picked))
            + "; the other rows are reported, not chosen.",
        ]
    return [*lines, ""]


def write_results(config: ReproduceConfig, results: Mapping[str, Any], write_plots: bool = True) -> list[Path]:
    """``results.json``, ``results.md`` and the PNGs into ``config.output_dir``."""
    out = Path(config.output_dir)
    written = [
        atomic_write_json(out / "results.json", results),
        atomic_write_text(out / "results.md", markdown_results(results)),
    ]
    if write_plots:
        for spec in config.models:
            model = results["models"].get(spec.name)
            if model and model["rows"] and model["main_metrics"]:
                written.append(
                    plot_bars(model, out / f"{spec.name}_bars.png", f"{model['model']}\n(error bars: std over seeds)")
                )
                if any(v != BASE for v in model["rows"]) and BASE in model["rows"]:
                    written.append(
                        plot_deltas(
                            model,
                            out / f"{spec.name}_deltas.png",
                            f"{model['model']}: Δ against the untrained base (shaded: ±2·s noise)",
                            results.get("config", {}).get("targets"),
                        )
                    )
            curves = plot_curves(config, spec, out / f"{spec.name}_curves.png")
            if curves is not None:
                written.append(curves)
    return written
