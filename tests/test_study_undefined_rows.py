"""A study with a collapsed seed: its BIOSSES predictions are constant, so its Spearman is NaN (``null`` in
``results.json``), and so are its variant's mean, Δ against the base and paired Δ on BIOSSES and on the mean of the
tasks. The report shows – there with a note naming the seed, in process and from ``results.json`` alike (it printed
``+nan [+nan, +nan]`` and ``nan ± nan``, and a report of the saved record raised TypeError on ``null``); the targets
on those Δs are missed, neither met nor a crash; the paired plot says the row has no Δ (it printed ``+nan``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from biohicl.evaluation import plots
from biohicl.evaluation.results import signed
from biohicl.evaluation.significance import ItemValues, paired_bootstrap
from biohicl.study import ReproduceConfig
from biohicl.study.report import markdown_results, write_results
from biohicl.study.stats import aggregate
from tests.conftest import tiny_study_values

GOLD = np.random.default_rng(0).random(100) * 4
NOTE = "(its predictions are constant or not finite: a collapsed model?)"


def _record(rng: np.random.Generator, collapsed: bool = False) -> dict:
    """An ``eval.json`` with per-item BIOSSES (100 pairs) and PubMedQA (500 questions) values; ``collapsed``: every
    BIOSSES prediction 0.93, its Spearman NaN (as the evaluator records it in process)."""
    from scipy.stats import spearmanr

    predictions = np.full(100, 0.93) if collapsed else GOLD + rng.normal(size=100)
    hits = (rng.random(500) < 0.86).astype(float)
    rho = math.nan if collapsed else float(spearmanr(predictions, GOLD)[0])
    ids = [str(i) for i in range(100)]
    biosses = {"predictions": predictions.tolist(), "gold": GOLD.tolist(), "ids": ids}
    return {
        "tasks": {
            "biosses": {
                "task": "biosses",
                "main_metric": "spearman",
                "metrics": {"spearman": rho},
                "per_item": biosses,
            },
            "pubmedqa": {
                "task": "pubmedqa",
                "main_metric": "recall@1",
                "metrics": {"recall@1": float(hits.mean())},
                "per_item": {"ids": [str(i) for i in range(500)], "scores": hits.tolist()},
            },
        },
        "summary": {"biosses/spearman": rho, "pubmedqa/recall@1": float(hits.mean())},
    }


def _study(tmp_path, collapsed: int, base: bool = True) -> tuple[ReproduceConfig, dict]:
    """A study of ``full`` on seeds 0, 1, 2 whose seed ``collapsed`` collapsed on BIOSSES, with targets on both tasks
    and their mean (+1 point each)."""
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="tiny-bert")
    config = ReproduceConfig.from_dict(values | {
        "variants": {"full": {}}, "seeds": [0, 1, 2], "tasks": ["biosses", "pubmedqa"],
        "targets": {"biosses/spearman": 0.01, "pubmedqa/recall@1": 0.01}, "target_mean": 0.01,
    })  # fmt: skip
    rng = np.random.default_rng(1)
    records = {("tiny", "base", None): _record(rng)} if base else {}
    records |= {("tiny", "full", seed): _record(rng, seed == collapsed) for seed in (0, 1, 2)}
    return config, records


def test_the_report_shows_dashes_and_notes_naming_the_collapsed_seed_in_process_and_from_results_json(tmp_path):
    config, records = _study(tmp_path, collapsed=2)
    results = aggregate(config, records)
    row = results["models"]["tiny"]["rows"]["full"]
    biosses, pubmedqa, mean = row["paired"]
    assert math.isnan(biosses["delta"]) and math.isnan(mean["delta"]) and math.isfinite(pubmedqa["delta"])
    # the seeds are named by their run labels (it read "tuned model 3")
    assert biosses["undefined"] == f"the spearman of tiny/full/seed2 is NaN {NOTE}"
    text = markdown_results(results)
    write_results(config, results, write_plots=False)
    saved = json.loads((tmp_path / "study" / "results.json").read_text(encoding="utf-8"))
    assert saved["models"]["tiny"]["rows"]["full"]["paired"][0]["delta"] is None  # strict JSON: NaN as null
    assert markdown_results(saved) == text  # it raised TypeError on the nulls
    assert "nan" not in text.replace("Spearman", "")
    lines = text.splitlines()
    qa = row["mean"]["pubmedqa/recall@1"], row["std"]["pubmedqa/recall@1"], row["vs_base"]["pubmedqa/recall@1"]
    qa_cell = f"{100 * qa[0]:.2f} ± {100 * qa[1]:.2f} ({signed(100 * qa[2]['delta'])})"
    assert f"| full | 3 | – | {qa_cell} |" in lines
    assert "note: full has no biosses Spearman mean: the score of seed 2 is NaN (a collapsed run?)" in lines
    interval = f"{signed(100 * pubmedqa['delta'])} [{signed(100 * pubmedqa['low'])}, {signed(100 * pubmedqa['high'])}]"
    paired = lines.index(f"| full | 3 | – | {interval} | – | – | – |")
    assert lines[paired + 1 : paired + 4] == [
        "",
        f"note: full: biosses has no Δ: the spearman of tiny/full/seed2 is NaN {NOTE}",
        "note: full: mean of the tasks has no Δ: biosses has no Δ",
    ]


def test_the_targets_on_an_undefined_delta_are_missed_not_met_and_not_a_crash(tmp_path):
    config, records = _study(tmp_path, collapsed=2)
    results = aggregate(config, records)
    assert results["verdict"] == {"judged": True, "why_not": []}  # the config's three seeds, each evaluated
    by_metric = {t["metric"]: t for t in results["targets"]}
    mean = by_metric["mean of biosses/spearman, pubmedqa/recall@1"]
    assert by_metric["biosses/spearman"]["met"] is False and mean["met"] is False
    assert mean["p_target"] is None  # the paired mean row has no share at the target (it was NaN)
    text = markdown_results(results)  # Δ and its noise mark –, missed; no share is defined, so no share column
    assert "| tiny | full | biosses/spearman | Δ ≥ +1.0 | – | **no** | – |" in text.splitlines()
    assert "| tiny | full | mean of biosses/spearman, pubmedqa/recall@1 | Δ ≥ +1.0 | – | **no** | – |" in text


def test_a_collapsed_first_seed_is_not_the_best_full_run(tmp_path):
    """max() over (NaN, seed) pairs kept the first pair: the collapsed seed 0 was the run to publish."""
    config, records = _study(tmp_path, collapsed=0)
    best = aggregate(config, records)["models"]["tiny"]["best_full_run"]
    means = {s: np.mean(list(records[("tiny", "full", s)]["summary"].values())) for s in (1, 2)}
    assert best["seed"] == max(means, key=means.get) and best["mean_main_metric"] == pytest.approx(max(means.values()))


def _values(rng: np.random.Generator, collapsed: bool = False) -> dict[str, ItemValues]:
    record = _record(rng, collapsed)
    return {task: ItemValues.from_record(record, task) for task in ("pubmedqa", "biosses")}


def test_the_paired_plot_says_a_row_has_no_delta(tmp_path, monkeypatch):
    texts = []

    def keep(fig, output, dpi="figure"):
        texts.extend(text.get_text() for text in fig.axes[0].texts)
        return save_png(fig, output, dpi)

    save_png = plots.save_png
    monkeypatch.setattr(plots, "save_png", keep)
    rng = np.random.default_rng(3)
    rows = paired_bootstrap(_values(rng), [_values(rng), _values(rng, collapsed=True)], rounds=200, target=0.01)
    pubmedqa, biosses, mean = rows
    assert biosses.undefined and mean.undefined and not pubmedqa.undefined
    assert plots.plot_paired(rows, tmp_path / "paired.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = f"{signed(100 * pubmedqa.delta)} [{signed(100 * pubmedqa.low)}, {signed(100 * pubmedqa.high)}]"
    assert texts == [  # bottom to top: the last row first
        "no Δ (see the table's note)",
        "no Δ (see the table's note)",
        f"{shown}  P(Δ≤0) {pubmedqa.p_no_gain:.3f}  P(Δ≥+1.0) {pubmedqa.p_target:.2f}",
    ]


def test_the_paired_plot_says_a_row_has_a_delta_but_no_interval(tmp_path, monkeypatch):
    """A Δ undefined in every round (three pairs drawn as one repeated pair, say): the Δ is shown, without bounds."""
    from biohicl.evaluation.significance import PairedDelta

    texts, save_png = [], plots.save_png

    def keep(fig, output, dpi="figure"):
        texts.extend(text.get_text() for text in fig.axes[0].texts)
        return save_png(fig, output, dpi)

    monkeypatch.setattr(plots, "save_png", keep)
    nan, why = math.nan, "Δ is undefined in every round (a resample whose predictions or gold scores are all tied)"
    row = PairedDelta(
        "s", "spearman", 3, 0.5, [0.6], 0.1, nan, nan, nan, 100, 0.95, undefined_rounds=100, undefined=why
    )
    plots.plot_paired([row], tmp_path / "paired.png")
    assert texts == ["+10.00, no interval (see the table's note)"]


@pytest.mark.parametrize("first", [math.nan, 0.87])
def test_the_bars_zoom_over_the_finite_means_whatever_comes_first(first):
    from biohicl.study.figures import zoomed_limits

    values = [first, 0.81, None, 0.87, math.nan] if math.isnan(first) else [0.87, math.nan, 0.81, None]
    low, high = zoomed_limits(values)
    assert (low, high) == pytest.approx((0.71, 0.93))  # min(nan, ...) was nan: the axis fell back to (0, 1.05)
    assert zoomed_limits([math.nan, None]) == (0.0, 1.05)
