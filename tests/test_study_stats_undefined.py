"""The study's statistics where a number is undefined or belongs to other tasks: the share at the target of the
targets' mean comes from a paired mean over the same targets only, a Δ that is NaN is neither above nor below the
seed noise, and a `full` seed without any main metric is no best run (it raised ZeroDivisionError)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from biohicl.study import ReproduceConfig
from biohicl.study.report import markdown_results
from biohicl.study.stats import aggregate, compare
from tests.conftest import tiny_study_values
from tests.test_study_undefined_rows import GOLD, _record


def _config(tmp_path, targets: dict[str, float], variants: tuple[str, ...] = ("full",)) -> ReproduceConfig:
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="tiny-bert")
    return ReproduceConfig.from_dict(values | {
        "variants": {v: {} for v in variants}, "seeds": [0, 1, 2], "tasks": ["biosses", "pubmedqa"],
        "targets": targets, "target_mean": 0.01,
    })  # fmt: skip


def _records(rng: np.random.Generator, collapsed: int | None = None, variants: tuple[str, ...] = ("full",)) -> dict:
    records = {("tiny", "base", None): _record(rng)}
    return records | {("tiny", v, s): _record(rng, v == "full" and s == collapsed) for v in variants for s in (0, 1, 2)}


def test_the_targets_mean_has_no_share_at_the_target_when_a_target_is_not_its_tasks_main_metric(tmp_path):
    # PubMedQA's R@5 is not its main metric, so the paired rows are BIOSSES alone: the mean's P(Δ ≥ target) was
    # BIOSSES' (1.0) beside a mean Δ of −8 points
    config = _config(tmp_path, {"biosses/spearman": 0.0, "pubmedqa/recall@5": 0.0})
    rng = np.random.default_rng(1)
    records = _records(rng)
    for seed in (0, 1, 2):  # the tuned seeds rank BIOSSES better than the base
        predictions = (GOLD + 0.3 * rng.normal(size=100)).tolist()
        record, rho = records[("tiny", "full", seed)], float(spearmanr(predictions, GOLD)[0])
        record["tasks"]["biosses"]["per_item"]["predictions"] = predictions
        record["tasks"]["biosses"]["metrics"]["spearman"] = record["summary"]["biosses/spearman"] = rho
    for key, record in records.items():
        record["summary"]["pubmedqa/recall@5"] = 0.90 if key[1] == "base" else 0.60  # the tuned seeds lose 30 points
    results = aggregate(config, records)
    (paired,) = results["models"]["tiny"]["rows"]["full"]["paired"]
    assert (paired["task"], paired["p_target"]) == ("biosses", 1.0)
    mean = results["targets"][-1]
    assert mean["metric"] == "mean of biosses/spearman, pubmedqa/recall@5" and mean["delta"] < -0.05
    assert mean["p_target"] is None
    table = markdown_results({**results, "title": "t"})
    assert "P(Δ ≥ target) |" not in table.split("## Targets")[1]  # no share in the section: no column

    same = _config(tmp_path, {"biosses/spearman": 0.0, "pubmedqa/recall@1": 0.0})  # both main metrics: paired
    results = aggregate(same, _records(np.random.default_rng(1)))
    paired = results["models"]["tiny"]["rows"]["full"]["paired"]
    assert [p["task"] for p in paired] == ["biosses", "pubmedqa", "mean of the tasks"]
    assert results["targets"][-1]["p_target"] == paired[-1]["p_target"] and 0 <= paired[-1]["p_target"] <= 1


def test_a_nan_delta_is_neither_above_nor_below_the_seed_noise(tmp_path):
    # abs(nan) > threshold is False: results.json recorded exceeds_noise false for an undefined Δ
    row = {"n": 3, "mean": {"m": math.nan}, "std": {"m": math.nan}, "values": {"m": [0.5, 0.6, math.nan]}}
    base = {"n": 1, "mean": {"m": 0.5}, "std": {}, "values": {"m": [0.5]}}
    assert compare(base, row, "m")["exceeds_noise"] is None
    defined = {"n": 3, "mean": {"m": 0.6}, "std": {"m": 0.01}, "values": {"m": [0.59, 0.6, 0.61]}}
    assert compare(base, defined, "m")["exceeds_noise"] is True  # a defined Δ is still judged

    config = _config(tmp_path, {"biosses/spearman": 0.01, "pubmedqa/recall@1": 0.01}, ("full", "no_mse"))
    results = aggregate(config, _records(np.random.default_rng(1), collapsed=1, variants=("full", "no_mse")))
    noise = {(t["metric"], t["target"]): t["exceeds_noise"] for t in results["targets"]}
    mean = "mean of biosses/spearman, pubmedqa/recall@1"
    assert noise[("biosses/spearman", 0.01)] is None and noise[(mean, 0.01)] is None
    assert noise[("biosses/spearman", "full ≥ no_mse")] is None
    assert noise[("pubmedqa/recall@1", 0.01)] is False  # defined: judged
    table = markdown_results({**results, "title": "t"})
    assert "| tiny | full | biosses/spearman | full ≥ no_mse | – | **no** | – |" in table


def test_a_full_seed_with_none_of_the_main_metrics_is_no_best_run(tmp_path):
    config = _config(tmp_path, {"biosses/spearman": 0.01, "pubmedqa/recall@1": 0.01})
    records = _records(np.random.default_rng(1))
    records[("tiny", "full", 0)]["summary"] = {"other/x": 0.5}  # evaluated on none of the main metrics' tasks
    scores = {s: sum(records[("tiny", "full", s)]["summary"].values()) / 2 for s in (1, 2)}
    best = aggregate(config, records)["models"]["tiny"]["best_full_run"]
    assert best["seed"] == max(scores, key=scores.get) and best["mean_main_metric"] == scores[best["seed"]]
