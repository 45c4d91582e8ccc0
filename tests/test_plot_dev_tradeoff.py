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
