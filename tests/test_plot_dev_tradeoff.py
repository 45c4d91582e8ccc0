"""``scripts/plot_dev_tradeoff.py``: agreement against a dev metric's change from step 0, read from run records."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

from biohicl.errors import BioHiCLError, ConfigError
from biohicl.evaluation.plots import pyplot


@pytest.fixture(scope="module")
def plot_dev_tradeoff():
    return load_script("plot_dev_tradeoff")


def _record(folder, rows):
    folder.mkdir(parents=True)
    (folder / "dev_evaluations.json").write_text(json.dumps(rows), encoding="utf-8")
    return folder


def test_series_is_agreement_and_the_change_from_step_0(tmp_path, plot_dev_tradeoff):
    run = _record(tmp_path / "run_seed3", [
        {"step": 0, "eval_siml-agreement_spearman": 0.30, "eval_scifact_ndcg@10": 0.640},
        {"step": 42, "eval_siml-agreement_spearman": 0.40, "eval_scifact_ndcg@10": 0.632},
        {"step": 84, "eval_siml-agreement_spearman": 0.48, "eval_scifact_ndcg@10": 0.645},
    ])  # fmt: skip
    series = plot_dev_tradeoff.tradeoff_series(run, "scifact_ndcg@10")
    assert [s for s, _, _ in series] == [0, 42, 84]
    assert [a for _, a, _ in series] == [0.30, 0.40, 0.48]
    assert [d for _, _, d in series] == pytest.approx([0.0, -0.008, 0.005])
    out = tmp_path / "plot" / "tradeoff.png"
    assert plot_dev_tradeoff.main([str(run), "--metric", "eval_scifact_ndcg@10", "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_record_without_the_metric_or_step_0_is_named(tmp_path, plot_dev_tradeoff):
    run = _record(tmp_path / "a", [{"step": 0, "eval_siml-agreement_spearman": 0.3}])
    with pytest.raises(ConfigError, match=r"a/dev_evaluations\.json: step 0 has no eval_scifact_ndcg@10"):
        plot_dev_tradeoff.tradeoff_series(run, "scifact_ndcg@10")
    run = _record(tmp_path / "b", [{"step": 5, "eval_siml-agreement_spearman": 0.3, "eval_scifact_ndcg@10": 0.6}])
    with pytest.raises(ConfigError, match=r"b/dev_evaluations\.json: no step 0"):
        plot_dev_tradeoff.tradeoff_series(run, "scifact_ndcg@10")


def test_an_unknown_metric_is_one_line_and_exit_2(tmp_path, plot_dev_tradeoff, capsys):
    run = _record(tmp_path / "r", [{"step": 0, "eval_siml-agreement_spearman": 0.3, "eval_scifact_ndcg@10": 0.6}])
    out = tmp_path / "t.png"
    figures = pyplot().get_fignums()
    assert plot_dev_tradeoff.main([str(run), "--metric", "nope", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no eval_nope" in err and not out.exists()
    assert pyplot().get_fignums() == figures  # the refused run left no figure open for a later test to see


def test_a_failed_save_leaves_no_figure_open(tmp_path, plot_dev_tradeoff):
    run = _record(tmp_path / "r", [{"step": 0, "eval_siml-agreement_spearman": 0.3, "eval_scifact_ndcg@10": 0.6}])
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    figures = pyplot().get_fignums()
    with pytest.raises(BioHiCLError, match=r"file/t\.png"):  # its folder is a file: saving fails
        plot_dev_tradeoff.main([str(run), "--output", str(tmp_path / "file" / "t.png")])
    assert pyplot().get_fignums() == figures


def test_seeds_of_a_variant_share_a_colour_and_the_legend_sits_outside_the_axes(
    tmp_path, plot_dev_tradeoff, monkeypatch
):
    """docs/results.md plots up to 21 runs of six variants: a colour per run repeated after matplotlib's ten, and the
    legend inside the axes covered the points and the x label, its last entry cut off at the figure's edge."""
    runs = [f"one_pass_distill{w}_seed{s}" for w, seeds in (("4", [3]), ("2", [3, 4, 5]), ("1", [3, 4, 5]))
            for s in seeds]  # fmt: skip
    rows = [{"step": step, "eval_siml-agreement_spearman": 0.3 + step / 1000, "eval_scifact_ndcg@10": 0.66}
            for step in (0, 70, 140, 209)]  # fmt: skip
    records = [str(_record(tmp_path / name, rows)) for name in runs]
    drawn = {}

    def capture(fig, output, dpi="figure"):
        fig.canvas.draw()
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        drawn["figure"] = fig.bbox.bounds
        drawn["axes"] = ax.get_window_extent(renderer).bounds
        drawn["legend"] = ax.get_legend().get_window_extent(renderer).bounds
        drawn["xlabel"] = ax.xaxis.label.get_window_extent(renderer).bounds
        drawn["lines"] = {line.get_label(): (line.get_color(), line.get_marker()) for line in ax.get_lines()
                          if not line.get_label().startswith("_")}  # fmt: skip
        return save_png(fig, output, dpi)

    save_png = plot_dev_tradeoff.save_png
    monkeypatch.setattr(plot_dev_tradeoff, "save_png", capture)
    assert plot_dev_tradeoff.main([*records, "--output", str(tmp_path / "t.png")]) == 0
    lines = drawn["lines"]
    assert sorted(lines) == sorted(runs)
    colour = {name: lines[name][0] for name in runs}
    assert colour["one_pass_distill2_seed3"] == colour["one_pass_distill2_seed4"] == colour["one_pass_distill2_seed5"]
    assert colour["one_pass_distill1_seed3"] == colour["one_pass_distill1_seed5"]
    assert len({colour["one_pass_distill4_seed3"], colour["one_pass_distill2_seed3"],
                colour["one_pass_distill1_seed3"]}) == 3  # fmt: skip
    assert len({lines[f"one_pass_distill2_seed{s}"][1] for s in (3, 4, 5)}) == 3  # seeds: one marker each

    def inside(inner, outer):
        x, y, w, h = inner
        ox, oy, ow, oh = outer
        return x >= ox - 0.5 and y >= oy - 0.5 and x + w <= ox + ow + 0.5 and y + h <= oy + oh + 0.5

    def overlap(a, b):
        return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]

    assert inside(drawn["legend"], drawn["figure"])  # no entry cut off
    assert not overlap(drawn["legend"], drawn["axes"])  # no point covered
    assert not overlap(drawn["legend"], drawn["xlabel"])
