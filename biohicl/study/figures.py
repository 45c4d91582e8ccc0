"""The study report's figures (PNGs): each model's scores as bars, its variants' Δs against the base, and the runs'
training curves; :func:`biohicl.study.report.write_results` writes them beside ``results.md``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.plan import BASE, run_dir_for


def zoomed_limits(values: Sequence[float | None]) -> tuple[float, float]:
    """The bars' y range, zoomed in on the scores (the differences are a few points): over the finite ones only, so
    a collapsed seed's undefined (NaN) mean neither unzooms the axis nor hides the others; (0, 1.05) without any."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.05
    return max(0.0, min(finite) - 0.1), min(1.05, max(finite) + 0.06)


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
    low, high = zoomed_limits([row["mean"].get(m) for row in rows.values() for m in metrics])
    ax.set_ylim(low, high)
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
