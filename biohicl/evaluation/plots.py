"""A grouped bar chart of several results files side by side (e.g. base vs. tuned), saved as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from biohicl.atomic import atomic_path
from biohicl.errors import DataError
from biohicl.evaluation.report import columns, metric_label, run_label


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
    records: Sequence[dict[str, Any]],
    output: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "biohicl evaluation",
) -> Path:
    """Draw one group per ``task metric`` and one bar per run; write a PNG to ``output`` (matplotlib, Agg)."""
    import numpy as np

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
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, output)
