"""Loss curves from a run's ``trainer_state.json``: one line per loss component, evaluation metrics beside them, and
the step model selection kept.

>>> plot_training_curves("runs/minilm/trainer_state.json", "runs/minilm/training_curves.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_path
from biohicl.errors import DataError
from biohicl.field_types import is_number
from biohicl.jsonio import read_json

#: Training-log keys drawn first on the loss panel, in this order, when present; any other ``loss_*`` component a
#: loss logs (``loss_distill``, ``loss_title``, a custom loss's) follows in name order.
LOSS_KEYS = ("loss", "loss_mse", "loss_con")
#: How the plots name each loss component (:func:`loss_label`; a key without one is named by itself).
LOSS_LABELS = {
    "loss": "total L",
    "loss_mse": "L_mse (filtered regression)",
    "loss_con": "L_con",
    "loss_distill": "L_distill (base SimE)",
    "loss_title": "L_title (title → abstract)",
}


def loss_label(key: str) -> str:
    """The legend label of a loss key (:data:`LOSS_LABELS`), the key itself when it has none."""
    return LOSS_LABELS.get(key, key)


def loss_keys(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The loss keys of a log history: :data:`LOSS_KEYS` first, then every other ``loss_*`` key by name."""
    others = sorted({k for e in history for k in e if k.startswith("loss_") and k not in LOSS_KEYS})
    return [*LOSS_KEYS, *others]


def read_log_history(path: str | Path) -> list[dict[str, Any]]:
    """``log_history`` of a ``trainer_state.json`` (a run dir or a checkpoint dir works too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "trainer_state.json"
    state = read_json(path, missing="trainer_state.json not found")
    if not isinstance(state, dict):
        raise DataError(f"expected a JSON object, got {type(state).__name__}", path)
    history = state.get("log_history")
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise DataError("no log_history list of objects", path)
    for key in {k for entry in history for k in entry if k == "loss" or k.startswith(("loss_", "eval_"))}:
        curve_series(history, key, path)  # what the curves read are numbers: the first that is not is named here
    return history


def curve_series(
    history: Sequence[Mapping[str, Any]], key: str, where: str | Path | None = None
) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` over the log entries that have it; a step or value that is not a number is a
    :class:`DataError` naming the key and step (and ``where``, the file, when given)."""
    steps, values = [], []
    for entry in history:
        if key in entry and "step" in entry:
            step, value = entry["step"], entry[key]
            if not (is_number(step) and float(step).is_integer()):
                raise DataError(f"log_history: step {step!r} (of {key}) is not an integer", where)
            if not is_number(value):
                raise DataError(f"log_history step {step}: {key} is {value!r}, not a number", where)
            steps.append(int(step))
            values.append(float(value))
    return steps, values


def plot_training_curves(
    source: str | Path | Sequence[Mapping[str, Any]],
    output: str | Path,
    title: str | None = None,
    eval_metrics: Sequence[str] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> Path:
    """Draw the loss components (left) and evaluation metrics (right, if any) and save a PNG.

    ``source`` is a ``trainer_state.json`` path, a run directory or a ``log_history`` list. ``eval_metrics``
    defaults to every ``eval_*`` key except runtimes and the 0/1 ``*_guard_passed`` flags. ``selection`` (the
    trainer's selection record, or ``training_summary.json``: anything with ``best_step``) marks the kept step with
    a dashed vertical line on each panel, labelled ``kept: base`` for step 0 and ``kept: step N`` otherwise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = list(source) if not isinstance(source, (str, Path)) else read_log_history(source)
    losses = [(k, *curve_series(history, k)) for k in loss_keys(history)]
    losses = [(k, s, v) for k, s, v in losses if s]
    if not losses:
        where = source if isinstance(source, (str, Path)) else None
        raise DataError("the log history has no loss entries to plot", where)
    if eval_metrics is None:
        skipped = ("runtime", "per_second", "guard_passed")  # timings, and the guard's 0/1 flag
        eval_metrics = sorted({k for e in history for k in e if k.startswith("eval_") and not k.endswith(skipped)})
    evals = [(k, *curve_series(history, k)) for k in eval_metrics]
    evals = [(k, s, v) for k, s, v in evals if s]

    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6.5, 4), squeeze=False)
    ax = axes[0][0]
    kept = (selection or {}).get("best_step")
    if kept is not None:
        for axis in axes[0]:
            label = "kept: base" if kept == 0 else f"kept: step {kept}"
            axis.axvline(kept, color="0.35", linestyle="--", linewidth=1.0, label=label)
    for key, steps, values in losses:
        ax.plot(steps, values, marker="o", markersize=2.5, linewidth=1.4, label=loss_label(key))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("training loss components")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if evals:
        ax2 = axes[0][1]
        for key, steps, values in evals:
            ax2.plot(steps, values, marker="s", markersize=3, linewidth=1.4, label=key.removeprefix("eval_"))
        ax2.set_xlabel("optimizer step")
        ax2.set_title("evaluation during training")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(output) as tmp:  # a kill or a failed save leaves the previous plot (or none)
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return output
