"""A study table's cell says its own seed count when fewer of its row's seeds have the metric (a run's ``eval.json``
lacks that task), so a mean over one seed is not read as a mean over the row's ``n``."""

from __future__ import annotations

from biohicl.study import ReproduceConfig
from biohicl.study.report import markdown_results
from biohicl.study.stats import aggregate
from tests.conftest import tiny_study_values


def _record(summary: dict[str, float]) -> dict:
    """An eval.json of the tasks in ``summary`` (``task/metric`` → value), each one's main metric that value."""
    tasks = {}
    for key, value in summary.items():
        task, metric = key.split("/")
        tasks[task] = {"task": task, "main_metric": metric, "metrics": {metric: value}}
    return {"tasks": tasks, "summary": dict(summary)}


def test_a_cell_over_fewer_seeds_than_its_row_shows_its_count(tmp_path):
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="tiny-bert")
    config = ReproduceConfig.from_dict(values | {"variants": {"tuned": {}}, "seeds": [0, 1]})
    records = {
        ("tiny", "base", None): _record({"pubmedqa/recall@1": 0.5, "scifact/ndcg@10": 0.4}),
        ("tiny", "tuned", 0): _record({"pubmedqa/recall@1": 0.6, "scifact/ndcg@10": 0.5}),
        ("tiny", "tuned", 1): _record({"pubmedqa/recall@1": 0.7}),  # its eval.json lacks scifact
    }
    results = aggregate(config, records)
    row = results["models"]["tiny"]["rows"]["tuned"]
    assert row["n"] == 2 and row["values"]["scifact/ndcg@10"] == [0.5]
    table = markdown_results(results)
    # pubmedqa: mean 0.65, std |0.6 − 0.7|/√2 = 0.0707, Δ +0.15 beyond 2·s = 0.1414; scifact: seed 0 alone, Δ +0.10
    # with no noise estimate (one seed, a deterministic base)
    assert "| tuned | 2 | 65.00 ± 7.07 (+15.00 †) | 50.00 (n=1) (+10.00 ?) |" in table
    assert "| base | 1 | 50.00 | 40.00 |" in table  # a cell over all its row's seeds: no count of its own


def test_a_delta_that_rounds_to_zero_is_shown_as_plus_zero_not_minus_zero(tmp_path):
    """A tuned row a hair under its base (Δ −1e-7, ×100 = −0.00001) reads +0.00 in the Targets table and the cells."""
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="tiny-bert")
    config = ReproduceConfig.from_dict(
        values | {"variants": {"full": {}}, "seeds": [0], "targets": {"pubmedqa/recall@1": 0.0}}
    )
    records = {
        ("tiny", "base", None): _record({"pubmedqa/recall@1": 0.5}),
        ("tiny", "full", 0): _record({"pubmedqa/recall@1": 0.5 - 1e-7}),
    }
    table = markdown_results(aggregate(config, records))
    assert "| tiny | full | pubmedqa/recall@1 | Δ ≥ +0.0 | +0.00 | not judged |" in table  # one seed: no verdict
    assert "-0.00" not in table
    assert "| full | 1 | 50.00 (+0.00 ?) |" in table


def test_a_committed_record_from_before_targets_named_their_variant_renders_them_as_the_full_methods():
    """``docs/results/reproduce_*/results.json`` were written when every target was the full method's (its Δ against
    the base, or full ≥ an ablation) and name no variant: their table renders (it raised KeyError 'variant')."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "results" / "reproduce_minilm" / "results.json"
    results = json.loads(path.read_text())
    assert results["targets"] and all("variant" not in target for target in results["targets"])
    table = markdown_results(results)
    first = results["targets"][0]  # minilm, biosses/spearman, Δ ≥ +3.0, Δ −0.56: not met
    assert (first["model"], first["metric"], first["target"], round(100 * first["delta"], 2)) == (
        "minilm",
        "biosses/spearman",
        0.03,
        -0.56,
    )
    assert "| minilm | full | biosses/spearman | Δ ≥ +3.0 | -0.56 | **no** | no |" in table
