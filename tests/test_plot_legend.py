"""``plot_results`` puts its legend where it hides no bar and no bar's label, whatever the number of runs (it sat in
the lower right corner, over the last group's bars)."""

from __future__ import annotations

import matplotlib
import pytest

from biohicl.evaluation import plots

matplotlib.use("Agg")


def _record(name: str, score: float) -> dict:
    tasks = {"pubmedqa": ("recall@1", score), "biosses": ("spearman", score - 0.05), "scifact": ("ndcg@10", 1.0)}
    return {"model": {"id": name}, "tasks": {t: {"split": "test", "metrics": {m: v}} for t, (m, v) in tasks.items()}}


SHORT = ["base: sentence-transformers/all-MiniLM-L6-v2", *(f"model {i}" for i in range(1, 12))]
LONG = [  # run labels as `evaluate --compare` gives them: the models' ids
    "sentence-transformers/all-MiniLM-L6-v2",
    *(f"runs/study/minilm/one_pass_distill2/seed{i}" for i in range(3, 14)),
]
VERY_LONG = [f"runs/a-study-with-a-long-name/minilm/one_pass_distill2_all_terms/seed{i}/merged" for i in range(12)]


@pytest.mark.parametrize("names", [SHORT, LONG, VERY_LONG], ids=["short", "long", "very-long"])
@pytest.mark.parametrize("runs", [1, 3, 6, 12])
def test_the_legend_overlaps_no_bar_and_no_bar_label(runs, names, tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, output, dpi="figure"):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        drawn["legend"] = ax.get_legend().get_window_extent(renderer)
        drawn["others"] = [a.get_window_extent(renderer) for a in [*ax.patches, *ax.texts]]
        drawn["figure"] = fig.bbox
        return save_png(fig, output, dpi)

    save_png = plots.save_png
    monkeypatch.setattr(plots, "save_png", keep)
    records = [_record(f"run {i}", 0.99 - 0.01 * i) for i in range(runs)]
    labels = names[:runs]
    assert plots.plot_results(records, tmp_path / "r.png", labels=labels).stat().st_size > 0
    legend = drawn["legend"]
    assert len(drawn["others"]) == 2 * 3 * runs  # a bar and its label per task and run
    assert not [box for box in drawn["others"] if legend.overlaps(box)]
    figure = drawn["figure"]
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 and figure.y0 <= legend.y0 and legend.y1 <= figure.y1
