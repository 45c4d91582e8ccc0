"""Run and evaluation records are strict JSON: RFC 8259 has no NaN (JavaScript's ``JSON.parse``, the Hub's JSON viewer
and strict parsers refuse the literal ``NaN`` Python writes), so a non-finite score is written ``null``, and every
reader takes the ``null`` score of an evaluated step as NaN: a card, the dev pick, a report or a plot reads a record
with ``null`` as it read the one an earlier release wrote with ``NaN``, which still reads."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import load_script, synthetic_documents

from biohicl.errors import DataError, PublishError

NAN, INF = float("nan"), float("inf")
KEY = "eval_biosses_spearman"


def strict(text: str):
    """``text`` parsed as RFC 8259 JSON: ``NaN``, ``Infinity`` and ``-Infinity`` refused."""

    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def same(a, b) -> bool:
    """Whether two values are equal, a NaN equal to a NaN (as JSON writes them)."""
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


# -- a trained run's records


@pytest.fixture(scope="module")
def all_nan_run(tiny_bert_dir, tmp_path_factory) -> Path:
    """A trained run (load_best_model_at_end) whose every dev evaluation was NaN: step 0 (the base) is kept."""
    from biohicl.training.run import train_biohicl
    from tests.test_nan_evaluations import Scripted, nan_args

    root = tmp_path_factory.mktemp("strict-json-run")
    docs = root / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return train_biohicl(nan_args(tiny_bert_dir, docs, root / "run"), evaluator=Scripted([NAN, NAN, NAN]))


def test_a_run_record_with_a_nan_score_is_strict_json_holding_null(all_nan_run):
    """training_summary.json held ``"best_metric": NaN``, dev_evaluations.json ``"eval_biosses_spearman": NaN``."""
    summary = strict((all_nan_run / "training_summary.json").read_text(encoding="utf-8"))
    assert (summary["best_step"], summary["best_metric"], summary["step0_metric"]) == (0, None, None)
    assert summary["selection"]["evaluations"] == [[0, None], [2, None], [4, None]]
    rows = strict((all_nan_run / "dev_evaluations.json").read_text(encoding="utf-8"))
    assert [(row["step"], row[KEY]) for row in rows] == [(0, None), (2, None), (4, None)]


def _as_previous_release(run: Path, folder: Path) -> Path:
    """A copy of the all-NaN ``run`` whose records say NaN where this release writes null, as the release before
    wrote them."""
    shutil.copytree(run, folder)
    summary = json.loads((run / "training_summary.json").read_text(encoding="utf-8"))
    old = copy.deepcopy(summary)
    for holder in (old, old["selection"]):
        holder["best_metric"] = holder["step0_metric"] = NAN
    old["selection"]["evaluations"] = [[step, NAN] for step, _ in old["selection"]["evaluations"]]
    (folder / "training_summary.json").write_text(json.dumps(old, indent=2), encoding="utf-8")
    rows = json.loads((run / "dev_evaluations.json").read_text(encoding="utf-8"))
    rows = [{k: NAN if k.startswith("eval_") and v is None else v for k, v in row.items()} for row in rows]
    (folder / "dev_evaluations.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return folder


def test_the_card_of_a_run_record_with_null_reads_as_the_one_with_nan(all_nan_run, tmp_path):
    """The card refused the record: ``field selection.best_metric must be a number (selection.loaded_best), got
    None``; with null read as NaN it says "not a number" as it does for the earlier release's NaN."""
    from biohicl.hub.model_card import BioHiCLModelCardData
    from tests.test_nan_card import NOT_A_NUMBER, published_card

    old = _as_previous_release(all_nan_run, tmp_path / "old" / "run")
    new = tmp_path / "new" / "run"
    shutil.copytree(all_nan_run, new)
    old_data = BioHiCLModelCardData.from_run_dir(old, "tiny-collapsed")
    new_data = BioHiCLModelCardData.from_run_dir(new, "tiny-collapsed")
    assert math.isnan(new_data.selection["best_metric"]) and math.isnan(new_data.selection["step0_metric"])
    assert [row["base"] for row in new_data.selection["dev_metrics"]] == [pytest.approx(NAN, nan_ok=True)]
    assert same(new_data.selection, old_data.selection)
    old_card, new_card = published_card(old, tmp_path / "old" / "repo"), published_card(new, tmp_path / "new" / "repo")
    assert new_card == old_card
    assert f"| BIOSSES | Spearman (`biosses_spearman`) | score | {NOT_A_NUMBER} | {NOT_A_NUMBER} | – |" in new_card


def test_the_run_summary_reader_gives_nan_for_the_null_of_a_measured_score(all_nan_run):
    from biohicl.jsonio import read_json
    from biohicl.training.selection import read_evaluation_rows, read_summary

    summary = read_summary(read_json(all_nan_run / "training_summary.json"))
    assert summary["best_step"] == 0 and math.isnan(summary["best_metric"]) and math.isnan(summary["step0_metric"])
    assert all(math.isnan(value) for _, value in summary["selection"]["evaluations"])
    rows = read_evaluation_rows(read_json(all_nan_run / "dev_evaluations.json"))
    assert all(math.isnan(row[KEY]) for row in rows)


# -- the card's record checks


def _selection(**values):
    record = {
        "selection_metric": KEY, "greater_is_better": True, "step0_metric": 0.4, "best_step": 2, "best_metric": 0.5,
        "selected_base": False, "loaded_best": True, "evaluations": [[0, 0.4], [2, 0.5]],
    }  # fmt: skip
    return {**record, **values}


def test_a_null_score_of_an_evaluated_step_passes_the_cards_checks_and_a_null_step_or_field_does_not(tmp_path):
    from biohicl.hub.card_selection import selection_of
    from biohicl.hub.run_records import check_selected, checked_rows

    path = tmp_path / "training_summary.json"
    kept_base = _selection(step0_metric=None, best_step=0, best_metric=None, selected_base=True)
    kept_base["evaluations"] = [[0, None], [2, None]]
    check_selected({"selection": kept_base}, path)  # refused: "selection.best_metric must be a number ..., got None"
    nan_base = {**kept_base, "step0_metric": NAN, "best_metric": NAN, "evaluations": [[0, NAN], [2, NAN]]}
    args = {"selection_metrics": ["biosses_spearman"]}
    assert same(selection_of({"selection": kept_base}, args), selection_of({"selection": nan_base}, args))
    assert math.isnan(selection_of({"selection": kept_base}, args)["best_metric"])

    for summary, field, kind in (
        ({"selection": _selection(best_step=None, best_metric=None)}, "selection.best_step", "an integer"),
        ({"selection": _selection(step0_metric=None, evaluations=[[2, 0.5]])}, "selection.step0_metric", "a number"),
        ({"selection": _selection(best_metric=None)}, "selection.best_metric", "a number"),
    ):  # no step kept, step 0 never evaluated, a kept step that scored 0.5: null is no NaN there
        with pytest.raises(PublishError) as caught:
            check_selected(summary, path)
        assert str(caught.value) == f"{path}: field {field} must be {kind} (selection.loaded_best), got None"

    rows_path = tmp_path / "dev_evaluations.json"
    rows = checked_rows([{"step": 0, KEY: None, "eval_dev_score": 0.4}], rows_path)
    assert math.isnan(rows[0][KEY]) and rows[0]["eval_dev_score"] == 0.4
    with pytest.raises(PublishError, match=r"step 0: field eval_biosses_spearman must be a number, got 'nan'"):
        checked_rows([{"step": 0, KEY: "nan"}], rows_path)
    with pytest.raises(PublishError, match=r"row 1: field step must be an integer, got None"):
        checked_rows([{"step": None, KEY: 0.4}], rows_path)


# -- the dev pick and its report table


def test_the_dev_pick_and_its_table_read_a_null_score_as_the_nan_the_earlier_release_wrote(tmp_path):
    """The null best_metric of a run that kept its (NaN) base read as "no dev selection", not "kept its base"."""
    from biohicl.study.config import ReproduceConfig
    from biohicl.study.dev_pick import pick_variant, read_training_summaries
    from biohicl.study.plan import TRAINING_DONE_NAME, run_dir_for
    from biohicl.study.report import _dev_pick_table

    def pick(records: dict[str, str]) -> dict:
        values = {
            "output_dir": str(tmp_path / records["name"]), "models": [{"name": "m", "model": "base"}],
            "pick_variant_on_dev": True, "seeds": [1], "target_variants": ["full", "no_mse"],
            "variants": {"full": {}, "no_mse": {"use_mse": False}},
        }  # fmt: skip
        config = ReproduceConfig.from_dict(values)
        for variant in ("full", "no_mse"):
            folder = run_dir_for(config, "m", variant, 1)
            folder.mkdir(parents=True)
            (folder / TRAINING_DONE_NAME).write_text(records[variant], encoding="utf-8")
        return pick_variant(config, config.models[0], read_training_summaries(config))

    def summary(score, step0, selected, best_step):
        selection = _selection(step0_metric=step0, best_step=best_step, best_metric=score, selected_base=selected)
        selection["evaluations"] = [[0, step0], [2, score if best_step == 2 else step0]]
        return {"best_step": best_step, "best_metric": score, "step0_metric": step0, "selected_base": selected,
                "selection": selection}  # fmt: skip

    tuned = json.dumps(summary(0.5, 0.4, False, 2))
    with_nan = pick({"name": "nan", "full": json.dumps(summary(NAN, NAN, True, 0)), "no_mse": tuned})
    with_null = pick({"name": "null", "full": json.dumps(summary(None, None, True, 0)), "no_mse": tuned})
    assert [c["out"] for c in with_null["candidates"]] == ["kept its base: seed 1", None]
    assert same(with_null, with_nan) and with_null["picked"] == "no_mse"
    assert _dev_pick_table(with_null) == _dev_pick_table(with_nan)


# -- the evaluation cache and results records


def test_the_evaluation_cache_writes_null_for_a_nan_metric_and_reads_null_and_the_older_text_as_nan(tmp_path):
    """A NaN metric was stored as the text "nan"; both it and null read back as NaN."""
    from biohicl.evaluation.cache import EvaluationCache

    cache = EvaluationCache(tmp_path)
    path = cache.put("k", {"biosses_spearman": NAN, "biosses_pearson": -INF, "scifact_ndcg@10": 0.5}, ["biosses"])
    assert strict(path.read_text(encoding="utf-8"))["metrics"] == {
        "biosses_spearman": None,
        "biosses_pearson": None,
        "scifact_ndcg@10": 0.5,
    }
    metrics = cache.get("k")
    assert math.isnan(metrics["biosses_spearman"]) and math.isnan(metrics["biosses_pearson"])
    assert metrics["scifact_ndcg@10"] == 0.5
    path.write_text(json.dumps({"tasks": ["biosses"], "metrics": {"biosses_spearman": "nan"}}), encoding="utf-8")
    assert math.isnan(cache.get("k")["biosses_spearman"])


def test_a_results_record_with_a_null_metric_loads_as_the_one_with_nan(tmp_path):
    """load_results refused null: "task 'biosses': metric 'spearman' is None, not a number"."""
    from biohicl.evaluation.runner import load_results

    def record(value):
        task = {"task": "biosses", "split": "all", "main_metric": "spearman", "metrics": {"spearman": value}}
        return {"format": 1, "tasks": {"biosses": task}, "summary": {"biosses/spearman": value}}

    (tmp_path / "null.json").write_text(json.dumps(record(None)), encoding="utf-8")
    (tmp_path / "nan.json").write_text(json.dumps(record(NAN)), encoding="utf-8")
    loaded = load_results(tmp_path / "null.json")
    assert math.isnan(loaded["tasks"]["biosses"]["metrics"]["spearman"])
    assert math.isnan(loaded["summary"]["biosses/spearman"])
    assert same(loaded, load_results(tmp_path / "nan.json"))
    (tmp_path / "word.json").write_text(json.dumps(record("high")), encoding="utf-8")
    with pytest.raises(DataError, match="metric 'spearman' is 'high', not a number"):
        load_results(tmp_path / "word.json")


# -- the dev plots


def test_the_dev_plots_read_a_null_score_as_nan(tmp_path):
    """float(None) raised TypeError in both scripts."""
    tradeoff, heldout = load_script("plot_dev_tradeoff"), load_script("plot_heldout_vs_dev")
    agreement = "eval_siml-agreement_spearman"
    series = {}
    for name, missing in (("null", None), ("nan", NAN)):
        run = tmp_path / name / "run_seed3"
        run.mkdir(parents=True)
        rows = [
            {"step": 0, agreement: missing, "eval_scifact_ndcg@10": missing},
            {"step": 2, agreement: 0.4, "eval_scifact_ndcg@10": 0.6},
        ]
        (run / "dev_evaluations.json").write_text(json.dumps(rows), encoding="utf-8")
        (run / "training_summary.json").write_text(json.dumps({"best_step": 0}), encoding="utf-8")
        summary = {"biosses/spearman": 0.8, "pubmedqa/recall@1": 0.86}
        (run / "eval.json").write_text(json.dumps({"summary": summary}), encoding="utf-8")
        series[name] = (tradeoff.tradeoff_series(run, "scifact_ndcg@10"), heldout.run_point(run, summary))
    assert same(series["null"], series["nan"])
    assert math.isnan(series["null"][0][0][1]) and math.isnan(series["null"][1][2])
