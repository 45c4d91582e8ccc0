"""What training trades on dev: SimE-SimL agreement (x) against a dev retrieval metric's change from step 0 (y), one
line per run, one point per evaluated step, from the runs' ``dev_evaluations.json`` records (docs/results/).

    python scripts/plot_dev_tradeoff.py docs/results/study_minilm_cpu_guarded/*_seed3 \\
        --metric scifact_ndcg@10 --output docs/results/study_minilm_cpu_guarded/tradeoff.png

A record is the list the study sections of docs/results.md commit: ``{"step": N, "eval_<metric>": value, ...}`` per
evaluation, step 0 (the base) first. The runs of one variant (folder names that differ only in their ``_seed<N>``)
share a colour, each seed its own marker; the legend sits right of the axes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError
from biohicl.evaluation.plots import pyplot, save_png
from biohicl.training.selection import EVALUATIONS_NAME, read_evaluation_rows

AGREEMENT = "eval_siml-agreement_spearman"
MARKERS = "osD^vP*Xph"  # one per seed of a variant, in the order given


def tradeoff_series(record: Path, metric: str) -> list[tuple[int, float, float]]:
    """``(step, agreement, metric - step 0's metric)`` for each evaluation of one run's ``dev_evaluations.json``
    (the file, or its folder); ConfigError naming the file when a step lacks either metric or step 0 is missing."""
    path = record / EVALUATIONS_NAME if record.is_dir() else record
    try:
        rows = read_evaluation_rows(json.loads(path.read_text(encoding="utf-8")))  # a null score is NaN
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable dev_evaluations.json ({err})") from None
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    for row in rows:
        for name in (AGREEMENT, key):
            if name not in row:
                raise ConfigError(f"{path}: step {row.get('step')} has no {name}")
    base = next((row[key] for row in rows if row.get("step") == 0), None)
    if base is None:
        raise ConfigError(f"{path}: no step 0 (the base) to measure the change from")
    return [(int(row["step"]), float(row[AGREEMENT]), float(row[key]) - float(base)) for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path, help="run record folders (or their dev_evaluations.json)")
    parser.add_argument("--metric", default="scifact_ndcg@10", help="the dev retrieval metric on the y axis")
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    try:  # read every record before opening a figure: a bad one is one line, not a traceback, and leaks no figure
        all_series = [tradeoff_series(record, args.metric) for record in args.records]
    except ConfigError as err:
        print(f"plot_dev_tradeoff.py: {err}", file=sys.stderr)
        return 2
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.4, max(4.2, 1.2 + 0.16 * len(args.records))))  # the legend's column fits
    try:
        _draw(ax, args.records, all_series, args.metric)
        fig.tight_layout()
        save_png(fig, args.output, dpi=120)
    finally:
        plt.close(fig)  # save_png closes it; a failure while drawing or saving must not leave it open either
    return 0


def variant_of(label: str) -> str:
    """The run's variant: its folder name without a trailing ``_seed<N>``."""
    return re.sub(r"_seed\d+$", "", label)


def _draw(ax: Any, records: list[Path], all_series: list[list[tuple[int, float, float]]], metric: str) -> None:
    """One line per run (labelled by its folder; a colour per variant, a marker per seed), each evaluated step
    annotated, on ``ax``; the legend outside the axes, on the right."""
    labels = [record.name if record.is_dir() else record.parent.name for record in records]
    variants = list(dict.fromkeys(variant_of(label) for label in labels))
    colours = pyplot().get_cmap("tab10" if len(variants) <= 10 else "tab20")
    seen: dict[str, int] = {}
    for label, series in zip(labels, all_series, strict=True):
        variant = variant_of(label)
        marker = MARKERS[seen.get(variant, 0) % len(MARKERS)]
        seen[variant] = seen.get(variant, 0) + 1
        ax.plot([a for _, a, _ in series], [100 * d for _, _, d in series], marker=marker, markersize=4,
                color=colours(variants.index(variant)), label=label)  # fmt: skip
        for step, agreement, delta in series[1:]:
            ax.annotate(str(step), (agreement, 100 * delta), textcoords="offset points", xytext=(3, 3), fontsize=6)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("SimE-SimL agreement on held-out dev documents (Spearman)")
    ax.set_ylabel(f"{metric}: change from the base (points)")
    ax.set_title("What MeSH training trades on dev (labels: training step)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


if __name__ == "__main__":
    raise SystemExit(main())
