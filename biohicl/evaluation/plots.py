"""Charts of results files, saved as PNG: several runs side by side (e.g. base vs. tuned) and paired Δs with their
intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from biohicl.atomic import atomic_path
from biohicl.errors import DataError
from biohicl.evaluation.report import columns, metric_label, run_label
from biohicl.evaluation.results import signed

if TYPE_CHECKING:
    from biohicl.evaluation.significance import PairedDelta


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, output: str | Path, dpi: float | str = "figure") -> Path:
    """Write ``fig`` as a PNG atomically (a kill leaves the previous file or none; folders are created), close it;
    ``dpi`` is matplotlib's (``"figure"``: the figure's own)."""
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return output


def plot_results(
    records: Sequence[dict[str, Any]] | dict[str, Any],
    output: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "biohicl evaluation",
) -> Path:
    """Draw one group per ``task metric`` and one bar per run (``records``, or one record); write a PNG to
    ``output`` (matplotlib, Agg)."""
    import numpy as np

    records = [records] if isinstance(records, dict) else records
    plt = pyplot()

    labels = list(labels) if labels else [run_label(r, f"run {i + 1}") for i, r in enumerate(records)]
    cols = columns(records)
    if not cols:
        raise DataError("nothing to plot: the results files share no task metrics", output)
    width = 0.8 / max(len(records), 1)
    x = np.arange(len(cols))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(cols) + 2), 4.2), dpi=120)
    for i, (label, record) in enumerate(zip(labels, records, strict=True)):
        heights = []
        for task, split, metric in cols:
            result = record["tasks"].get(task)
            ok = result is not None and result.get("split", "") == split and metric in result["metrics"]
            heights.append(result["metrics"][metric] if ok else np.nan)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=label)
        ax.bar_label(bars, labels=[("" if np.isnan(h) else f"{h:.3f}") for h in heights], fontsize=7, padding=1)
    ax.set_xticks(x, [f"{task}\n{metric_label(metric)}" for task, _, metric in cols], fontsize=8)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _legend_above_bars(fig, ax, len(records))
    return save_png(fig, output)


def _legend_above_bars(fig: Any, ax: Any, runs: int) -> None:
    """The legend above the bars (in the lower right corner it hid the last group's bars): up to three runs a row,
    fewer when the row would be wider than the axes, the figure widened when one label alone is; room made above a
    score of 1 for its rows."""
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    for columns_of_legend in range(min(runs, 3), 0, -1):
        legend = ax.legend(fontsize=8, loc="upper center", ncols=columns_of_legend, frameon=False)
        if legend.get_window_extent(renderer).width <= ax.get_window_extent(renderer).width:
            break
    excess = legend.get_window_extent(renderer).width - ax.get_window_extent(renderer).width
    if excess > 0:  # one label wider than the axes
        fig.set_figwidth(fig.get_figwidth() + (excess + 24) / fig.dpi)
    for _ in range(3):  # the top set so that the legend starts above 1.08 (a score of 1 and its label), laid out again
        fig.tight_layout()
        share = (legend.get_window_extent(renderer).height + 8) / ax.get_window_extent(renderer).height
        if share > 0.5:  # many runs' rows: a taller figure keeps the bars at least half the axes
            fig.set_figheight(fig.get_figheight() * share / 0.45)
            continue
        ax.set_ylim(0, 1.08 / (1 - share))


def plot_paired(rows: Sequence[PairedDelta], output: str | Path, title: str | None = None) -> Path:
    """One line per task (and the tasks' mean): Δ in points with its interval, against a line at zero (and a dashed
    one at the target, when the rows have one). A row without a Δ or interval (``undefined``: a collapsed model) says
    so, pointing to the table's note (``markdown_paired``) for why."""
    plt = pyplot()
    if not rows:
        raise DataError("nothing to plot: no paired comparison", output)
    if title is None:
        tuned, bases = len(rows[0].tuned), rows[0].base_models
        sides = [f"{n} {side} models" for n, side in ((tuned, "tuned"), (bases, "base")) if n > 1]
        title = "tuned − base, paired bootstrap" + (f" ({' and '.join(sides)} as their mean)" if sides else "")
    fig, ax = plt.subplots(figsize=(8.0, 0.55 * len(rows) + 1.6), dpi=120)
    for y, row in enumerate(reversed(rows)):
        delta, low, high = 100 * row.delta, 100 * row.low, 100 * row.high
        if row.undefined:  # no interval (NaN bounds and P's), nor a Δ where a model's metric is NaN: the note says why
            ax.plot(delta, y, "o", color="#7f7f7f")  # a NaN Δ draws nothing
            text = ("no Δ" if math.isnan(delta) else f"{signed(delta)}, no interval") + " (see the table's note)"
        else:
            color = "#2a9d48" if low > 0 else "#c0392b" if high < 0 else "#7f7f7f"
            ax.errorbar(delta, y, xerr=[[delta - low], [high - delta]], fmt="o", color=color, capsize=4)
            at_target = "" if row.p_target is None else f"  P(Δ≥{signed(100 * row.target, 1)}) {row.p_target:.2f}"
            text = f"{signed(delta)} [{signed(low)}, {signed(high)}]  P(Δ≤0) {row.p_no_gain:.3f}{at_target}"
        ax.annotate(
            text,
            (1.0, y),  # a column right of the axes, whatever the intervals' width
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    if rows[0].target is not None:
        ax.axvline(100 * rows[0].target, color="#1f77b4", linewidth=0.8, linestyle="--")
    from biohicl.evaluation.significance import MEAN_ROW

    labels = [row.task if row.task == MEAN_ROW else f"{row.task}\n{metric_label(row.metric)}" for row in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.margins(x=0.08)
    drawn = "the models and items" if rows[0].models_resampled else "the items"
    ax.set_xlabel(f"Δ (points), {rows[0].confidence:.0%} interval over {rows[0].rounds:,} resamples of {drawn}")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, output)
