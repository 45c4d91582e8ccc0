"""The study's report: ``results.md`` tables and the bar / Δ / training-curve PNGs (model cards:
:mod:`biohicl.study.cards`).

Everything here renders the ``results.json`` record of :func:`biohicl.study.stats.aggregate`; nothing is computed
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_write_json, atomic_write_text
from biohicl.evaluation.results import signed
from biohicl.provenance import UNKNOWN_SOURCE
from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.plan import BASE, run_dir_for
from biohicl.study.stats import NOISE_RULE


def _cell(
    row: Mapping[str, Any], metric: str, comparison: Mapping[str, Any] | None = None, scale: float = 100.0
) -> str:
    """``mean ± std`` (×100) of an aggregated row, ``(n=k)`` when fewer of its seeds than the row's ``n`` have the
    metric (a run's ``eval.json`` lacks its task), and ``(Δ†)`` against a reference row when given."""
    if metric not in row["mean"]:
        return "–"
    text = f"{scale * row['mean'][metric]:.2f}"
    if metric in row["std"]:
        text += f" ± {scale * row['std'][metric]:.2f}"
    if (count := len(row.get("values", {}).get(metric, ()))) and count != row["n"]:
        text += f" (n={count})"
    if comparison is not None:
        mark = {True: " †", False: "", None: " ?"}[comparison["exceeds_noise"]]
        text += f" ({signed(scale * comparison['delta'])}{mark})"
    return text


def _paired_table(rows: Mapping[str, Any]) -> list[str]:
    """Lines of the table of each variant's Δ against the base with its paired-bootstrap interval (×100)."""
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
    for variant, entries in paired.items():
        cells = [f"{signed(100 * e['delta'])} [{signed(100 * e['low'])}, {signed(100 * e['high'])}]" for e in entries]
        share = "" if target is None else f" {entries[-1]['p_target']:.3f} |"
        lines.append(
            f"| {variant} | {len(entries[0]['tuned'])} | "
            + " | ".join(cells)
            + f" | {entries[-1]['p_no_gain']:.3f} |"
            + share
        )
    return lines


def _dev_pick_table(pick: Mapping[str, Any]) -> list[str]:
    """The variant the dev data picks (``pick_variant_on_dev``): the rule, then one row per target variant."""
    lines = ["", "### The variant picked on dev", "", pick["rule"], ""]
    lines += ["| variant | seeds | selected steps | mean dev selection score | outcome |", "|---|---|---|---:|---|"]
    for c in pick["candidates"]:
        steps = ", ".join("–" if step is None else str(step) for step in c["selected_steps"])
        score = "–" if c["score"] is None else f"{c['score']:.4f}"
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
        lines += _variant_table(header, metrics, rows, "vs_base")
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
        noise = {True: "yes", False: "no", None: "unknown (n = 1)"}[t.get("exceeds_noise")]
        share = "" if not shares else " – |" if t.get("p_target") is None else f" {t['p_target']:.3f} |"
        met = ("yes" if t["met"] else "**no**") if judged else "not judged"
        lines.append(
            f"| {t['model']} | {t.get('variant', 'full')} | {t['metric']} | {target} | "
            f"{signed(100 * t['delta'])} | {met} | {noise} |{share}"
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


def plot_bars(model: Mapping[str, Any], output: Path, title: str) -> Path:
    """Grouped bars: one group per main metric, one bar per variant, error bars = std over seeds."""
    import numpy as np

    from biohicl.evaluation.plots import pyplot, save_png
    from biohicl.evaluation.report import summary_label

    plt = pyplot()

    rows, metrics = model["rows"], model["main_metrics"]
    variants = list(rows)
    width = 0.8 / max(len(variants), 1)
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) * max(1, len(variants) / 3) + 2), 4.4), dpi=110)
    palette = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20").colors  # one distinct colour per variant
    for i, variant in enumerate(variants):
        row = rows[variant]
        heights = [row["mean"].get(m, np.nan) for m in metrics]
        errors = [row["std"].get(m, 0.0) for m in metrics]
        bars = ax.bar(
            x - 0.4 + width * (i + 0.5),
            heights,
            width,
            yerr=errors,
            capsize=2,
            label=f"{variant} (n={row['n']})",
            color=palette[i % len(palette)],
        )
        ax.bar_label(
            bars, labels=[("" if np.isnan(h) else f"{h:.3f}") for h in heights], fontsize=6, padding=1, rotation=90
        )
    ax.set_xticks(x, [summary_label(m).replace(" ", "\n", 1) for m in metrics], fontsize=8)
    values = [v for row in rows.values() for m in metrics if (v := row["mean"].get(m)) is not None]
    low = max(0.0, min(values) - 0.1) if values else 0.0  # zoom in: the differences are a few points
    ax.set_ylim(low, min(1.05, max(values) + 0.06) if values else 1.05)
    ax.set_ylabel("score (axis does not start at 0)" if low > 0 else "score")
    ax.set_title(title, fontsize=10)
    if len(variants) > 8:  # many variants: the legend goes beside the plot, not over the bars
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, output)


def plot_deltas(model: Mapping[str, Any], output: Path, title: str, targets: Mapping[str, float] | None = None) -> Path:
    """One panel per main metric: each variant's Δ against the untrained base (points ×100) as a horizontal bar,
    error bar = std over seeds, its ±2·s noise threshold shaded behind it (:data:`~biohicl.study.stats.NOISE_RULE`)
    and the target drawn as a dashed line. Bars beyond the noise are solid (green above the base, red below); the
    others are grey."""
    from biohicl.evaluation.plots import pyplot, save_png
    from biohicl.evaluation.report import summary_label

    plt = pyplot()

    rows, metrics = model["rows"], model["main_metrics"]
    variants = [v for v in rows if v != BASE and any(m in rows[v].get("vs_base", {}) for m in metrics)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 1.2, 0.32 * len(variants) + 1.6),
                             dpi=110, sharey=True, squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        ys = range(len(variants))
        deltas, errors, colors, bands = [], [], [], []
        for variant in variants:
            entry = rows[variant].get("vs_base", {}).get(metric, {})
            delta = 100 * entry.get("delta", float("nan"))
            deltas.append(delta)
            errors.append(100 * rows[variant]["std"].get(metric, 0.0))
            bands.append(100 * (entry.get("threshold") or 0.0))
            colors.append(("#2a9d48" if delta > 0 else "#c0392b") if entry.get("exceeds_noise") else "#b9b9b9")
        ax.barh(list(ys), [2 * b for b in bands], left=[-b for b in bands], color="#1f6fb2", alpha=0.12, height=0.9)
        ax.barh(list(ys), deltas, xerr=errors, color=colors, capsize=2, height=0.6)
        ax.axvline(0, color="black", lw=0.8)
        if targets and metric in targets:
            ax.axvline(100 * targets[metric], color="#1f6fb2", ls="--", lw=1)
            ax.text(100 * targets[metric], len(variants) - 0.4, " target", color="#1f6fb2", fontsize=7, va="bottom")
        ax.set_title(summary_label(metric), fontsize=9)
        ax.set_xlabel("Δ vs base (points)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(variants)), [f"{v} (n={rows[v]['n']})" for v in variants])
    axes[0][0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, output)


def plot_curves(config: ReproduceConfig, model: ModelSpec, output: Path) -> Path | None:
    """Training loss per logged step for every finished run of ``model`` (one line per variant/seed)."""
    from biohicl.evaluation.plots import pyplot, save_png
    from biohicl.training.curves import curve_series, read_log_history

    plt = pyplot()

    series = []
    for variant in config.model_variants(model):
        for seed in config.run_seeds(model, variant):
            folder = run_dir_for(config, model.name, variant, seed)
            if not (folder / "trainer_state.json").is_file():
                continue
            steps, values = curve_series(read_log_history(folder), "loss")
            if steps:
                series.append((variant, seed, steps, values))
    if not series:
        return None
    variants = list(dict.fromkeys(s[0] for s in series))
    colors = {v: f"C{i}" for i, v in enumerate(variants)}
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    seen = set()
    for variant, _seed, steps, values in series:
        ax.plot(
            steps,
            values,
            color=colors[variant],
            alpha=0.85,
            linewidth=1.2,
            label=variant if variant not in seen else None,
        )
        seen.add(variant)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (each variant's own objective)")
    ax.set_title(f"{model.name}: training loss per run (one line per seed)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, output)


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
