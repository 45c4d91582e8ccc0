"""What dev selection bought held out: each run's SimE-SimL agreement at its selected step (x) against its held-out
gain over the base (y: the mean change of BIOSSES Spearman and PubMedQA test R@1, in points), one point per run, one
colour per variant, from the committed run records (docs/results/). Drawn after selection: nothing is chosen on it.

    python scripts/plot_heldout_vs_dev.py docs/results/study_minilm_cpu_guarded_256/one_pass_* \\
        --base docs/results/study_minilm_cpu_guarded_256/base/eval.json \\
        --output docs/results/study_minilm_cpu_guarded_256/heldout_vs_dev.png

A run record folder holds ``training_summary.json`` (its ``best_step``), ``dev_evaluations.json`` (agreement per
evaluated step) and ``eval.json`` (the held-out summary); its variant is the folder name less ``_seed<N>``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from biohicl.errors import ConfigError
from biohicl.evaluation.plots import pyplot, save_png
from biohicl.jsonio import nan_for_null
from biohicl.training.selection import EVALUATIONS_NAME, read_evaluation_rows

AGREEMENT = "eval_siml-agreement_spearman"
HELD_OUT = ("biosses/spearman", "pubmedqa/recall@1")


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not readable JSON ({err})") from None


def held_out_summary(path: Path) -> dict[str, float]:
    """The ``summary`` of an ``eval.json``; ConfigError naming the file when a held-out metric is missing."""
    summary = {k: nan_for_null(v) for k, v in _read(path).get("summary", {}).items()}  # null: a NaN's JSON
    for name in HELD_OUT:
        if name not in summary:
            raise ConfigError(f"{path}: summary has no {name}")
    return summary


def run_point(record: Path, base: dict[str, float]) -> tuple[str, int, float, float]:
    """``(variant, selected step, agreement there, held-out gain in points)`` of one run record folder."""
    best_step = _read(record / "training_summary.json").get("best_step")
    rows = read_evaluation_rows(_read(record / EVALUATIONS_NAME))  # a null score is NaN
    row = next((r for r in rows if r.get("step") == best_step), None)
    if row is None or AGREEMENT not in row:
        raise ConfigError(f"{record / EVALUATIONS_NAME}: no {AGREEMENT} at the selected step {best_step}")
    tuned = held_out_summary(record / "eval.json")
    gain = sum(100 * (tuned[name] - base[name]) for name in HELD_OUT) / len(HELD_OUT)
    variant = re.sub(r"_seed\d+$", "", record.name)
    return variant, int(best_step), float(row[AGREEMENT]), gain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path, help="run record folders")
    parser.add_argument("--base", type=Path, required=True, help="the base model's eval.json")
    parser.add_argument("--target", type=float, default=1.0, help="the held-out gain to draw as a line (points)")
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    base = held_out_summary(args.base)
    points = [run_point(record, base) for record in args.records]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant in dict.fromkeys(p[0] for p in points):
        mine = [p for p in points if p[0] == variant]
        ax.scatter([p[2] for p in mine], [p[3] for p in mine], label=variant, s=28)
    ax.axhline(args.target, color="tab:red", linewidth=0.8, linestyle="--", label=f"target (+{args.target:g})")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("SimE-SimL agreement at the selected step (dev, Spearman)")
    ax.set_ylabel("held-out Δ: mean of BIOSSES, PubMedQA R@1 (points)")
    ax.set_title("Dev agreement at the selected step and the held-out gain (one point per run)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, args.output, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
