"""``scripts/plot_heldout_vs_dev.py``: agreement at the selected step against the held-out gain, from run records."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

from biohicl.errors import ConfigError


@pytest.fixture(scope="module")
def plot_heldout_vs_dev():
    return load_script("plot_heldout_vs_dev")


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def _run(folder, best_step, biosses, recall):
    _write(folder / "training_summary.json", {"best_step": best_step})
    _write(folder / "dev_evaluations.json", [
        {"step": 0, "eval_siml-agreement_spearman": 0.33},
        {"step": 70, "eval_siml-agreement_spearman": 0.47},
        {"step": 140, "eval_siml-agreement_spearman": 0.55},
    ])  # fmt: skip
    _write(folder / "eval.json", {"summary": {"biosses/spearman": biosses, "pubmedqa/recall@1": recall}})
    return folder


def test_a_point_is_the_selected_steps_agreement_and_the_mean_held_out_gain(tmp_path, plot_heldout_vs_dev):
    base = _write(
        tmp_path / "base" / "eval.json", {"summary": {"biosses/spearman": 0.8125, "pubmedqa/recall@1": 0.858}}
    )
    tuned = _run(tmp_path / "distill2_seed5", 140, 0.8259, 0.868)
    kept_base = _run(tmp_path / "distill1_seed3", 0, 0.8125, 0.858)
    summary = plot_heldout_vs_dev.held_out_summary(base)
    variant, step, agreement, gain = plot_heldout_vs_dev.run_point(tuned, summary)
    # (1.34 + 1.00) / 2 points
    assert (variant, step, agreement) == ("distill2", 140, 0.55)
    assert gain == pytest.approx(1.17)
    assert plot_heldout_vs_dev.run_point(kept_base, summary) == ("distill1", 0, 0.33, 0.0)
    out = tmp_path / "plot" / "heldout.png"
    argv = [str(tuned), str(kept_base), "--base", str(base), "--output", str(out)]
    assert plot_heldout_vs_dev.main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_records_are_named(tmp_path, plot_heldout_vs_dev):
    base = {"biosses/spearman": 0.8, "pubmedqa/recall@1": 0.8}
    run = _run(tmp_path / "a_seed1", 209, 0.81, 0.86)
    with pytest.raises(
        ConfigError, match=r"a_seed1/dev_evaluations\.json: no eval_siml-agreement_spearman at the selected step 209"
    ):
        plot_heldout_vs_dev.run_point(run, base)
    bad = _write(tmp_path / "b" / "eval.json", {"summary": {"biosses/spearman": 0.8}})
    with pytest.raises(ConfigError, match=r"b/eval\.json: summary has no pubmedqa/recall@1"):
        plot_heldout_vs_dev.held_out_summary(bad)
