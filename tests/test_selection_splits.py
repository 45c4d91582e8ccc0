"""Model selection on held-out data (issue #15's evidence audit, session 35): a run that selects its step on BIOSSES or
PubMedQA's test split is warned once, in the run and in its dry run, and its model card says the selection was on
held-out data, not "on dev data only"; the split rules (:mod:`biohicl.training.selection_splits`) agree with the
evaluation harness's own."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.test_train_dry_run import beir, dataset, no_model, options  # noqa: F401 (fixtures)

#: The audit's command: BIOSSES (all of it) and PubMedQA's test split select the kept step.
HELD_OUT = {
    "eval_tasks": ["biosses", "pubmedqa"],
    "selection_metrics": ["biosses_spearman", "pubmedqa_recall@1"],
    "metric_for_best_model": "dev_score",
    "load_best_model_at_end": True,
}
NOTICE = (
    "model selection on held-out data: biosses:all, pubmedqa:test are no dev splits, and the selection reads "
    "biosses_spearman, pubmedqa_recall@1, so the kept step is chosen on the items those scores report: it is not a "
    "dev-selected model and its scores there are no held-out results (its model card says so); select on dev tasks "
    'instead (pubmedqa:dev, siml-agreement, scifact:train; docs/training.md, "Model selection on dev data")'
)

SPECS = [
    "biosses",
    "biosses:all",
    "pubmedqa",
    "pubmedqa:dev",
    "pubmedqa:train",
    "pubmedqa-context:dev",
    "scifact",
    "scifact:train",
    "nfcorpus:dev",
    "trec-covid",
    "siml-agreement",
    "siml-agreement:test",
    "siml-agreement@runs/x#mesh=trees/t.txt:dev",
    "siml-agreement@runs/x",
]


@pytest.mark.parametrize("spec", SPECS)
def test_the_split_rules_are_the_harness_s(spec):
    """Training reads a spec's split and its metrics' names as the harness files them, without importing it."""
    from biohicl.evaluation.evaluator import resolve_eval_tasks
    from biohicl.evaluation.results import AGREEMENT_TASK, DEV_SPLIT_TASKS
    from biohicl.evaluation.tasks import default_split, parse_task_spec, record_name
    from biohicl.training.selection_splits import DATASET_TASKS, DEV_KEYED_TASKS, metric_key, parse_spec, task_split

    resolved = resolve_eval_tasks([spec], "runs/x")[0]  # training's bare siml-agreement is filled in by then
    name, split = parse_task_spec(resolved)
    assert parse_spec(spec)[1] == split
    assert task_split(spec) == (split or default_split(name))
    assert metric_key(spec) == record_name(name, split)
    assert DATASET_TASKS == (AGREEMENT_TASK,) and set(DEV_KEYED_TASKS) == set(DEV_SPLIT_TASKS)


def test_a_beir_folder_s_metrics_are_its_folder_name_s(tmp_path):
    from biohicl.evaluation.tasks import record_name
    from biohicl.training.selection_splits import metric_key, task_split

    folder = tmp_path / "toy"
    folder.mkdir()
    assert metric_key(str(folder)) == record_name(str(folder), None) == "toy"
    assert task_split(str(folder)) == "test" and task_split(f"{folder}:dev") == "dev"


def test_the_audit_s_selection_is_on_held_out_data():
    from biohicl.training.selection_splits import held_out_names, held_out_notice, held_out_selection

    assert held_out_selection(HELD_OUT) == [("biosses", "all"), ("pubmedqa", "test")]
    assert held_out_names(HELD_OUT) == ["biosses:all", "pubmedqa:test"]
    assert held_out_notice(HELD_OUT) == NOTICE


@pytest.mark.parametrize(
    ("settings", "held"),
    [
        # the registered recipe: guarded selection on dev tasks only
        (
            {
                "eval_tasks": ["pubmedqa:dev", "siml-agreement", "scifact:train"],
                "selection_metrics": ["siml-agreement_spearman"],
                "selection_guard": ["pubmedqa-dev_recall@1", "eval_scifact_ndcg@10"],
            },
            [],
        ),
        # a test task evaluated beside the dev ones but not selected on
        ({"eval_tasks": ["pubmedqa:dev", "biosses"], "metric_for_best_model": "pubmedqa-dev_recall@1"}, []),
        # one metric of a test split, named by metric_for_best_model
        (
            {"eval_tasks": ["pubmedqa:dev", "pubmedqa"], "metric_for_best_model": "eval_pubmedqa_recall@1"},
            ["pubmedqa:test"],
        ),
        # a guard on a test split reads it too
        (
            {
                "eval_tasks": ["siml-agreement", "scifact"],
                "selection_metrics": ["siml-agreement_spearman"],
                "selection_guard": ["scifact_ndcg@10"],
            },
            ["scifact:test"],
        ),
        (
            {"eval_tasks": ["siml-agreement:test"], "metric_for_best_model": "siml-agreement_spearman"},
            ["siml-agreement:test"],
        ),
        ({"eval_tasks": ["pubmedqa:all"], "metric_for_best_model": "pubmedqa_recall@1"}, ["pubmedqa:all"]),
    ],
)
def test_which_tasks_a_selection_reads_on_held_out_data(settings, held):
    from biohicl.training.selection_splits import held_out_names

    assert held_out_names({**settings, "load_best_model_at_end": True}) == held
    assert held_out_names({**settings, "load_best_model_at_end": False}) == []  # it keeps its last step: no selection


def test_a_metric_is_its_own_task_s():
    """``pubmedqa-dev_recall@1`` is PubMedQA dev's, not PubMedQA test's; ``pubmedqa-context_*`` not PubMedQA's."""
    from biohicl.training.selection_splits import selecting_tasks

    tasks = ["pubmedqa", "pubmedqa:dev", "pubmedqa-context"]
    assert selecting_tasks(tasks, ["pubmedqa-dev_recall@1"]) == ["pubmedqa:dev"]
    assert selecting_tasks(tasks, ["pubmedqa-context_recall@1"]) == ["pubmedqa-context"]
    assert selecting_tasks(tasks, ["pubmedqa_recall@5"]) == ["pubmedqa"]


def training_args(tmp_path: Path, **settings):
    from biohicl.training.args import BioHiCLTrainingArguments

    return BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), eval_strategy="steps", eval_steps=2, save_steps=2, report_to="none",
        use_cpu=True, **settings,
    )  # fmt: skip


class Names:
    """An evaluator that names its metrics and is never called."""

    def __init__(self, *names: str):
        self.names = list(names)

    def __call__(self, model):
        raise AssertionError("not evaluated")

    def metric_names(self):
        return self.names


def held_out_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("model selection on held-out data")]


def test_the_run_warns_once_when_it_selects_on_held_out_data(tmp_path, caplog):
    """``train_biohicl`` and the trainer it builds both check the evaluation: one line for the run."""
    from biohicl.training.evaluator_checks import check_evaluation

    settings = {k: v for k, v in HELD_OUT.items() if k != "metric_for_best_model"}
    args = training_args(tmp_path, **settings)
    evaluator = Names("biosses_spearman", "biosses_pearson", "pubmedqa_recall@1", "pubmedqa_recall@5")
    with caplog.at_level(logging.WARNING, logger="biohicl.training"):
        check_evaluation(args, evaluator)
        check_evaluation(args, evaluator)
    assert held_out_lines(caplog) == [NOTICE]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.training"):  # another run (arguments): said again
        check_evaluation(training_args(tmp_path, **settings), evaluator)
    assert held_out_lines(caplog) == [NOTICE]


def test_a_run_selecting_on_dev_is_not_warned(tmp_path, caplog):
    from biohicl.training.evaluator_checks import check_evaluation

    args = training_args(
        tmp_path, eval_tasks=["pubmedqa:dev", "biosses"], load_best_model_at_end=True,
        metric_for_best_model="pubmedqa-dev_recall@1",
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="biohicl.training"):
        check_evaluation(args, Names("pubmedqa-dev_recall@1", "biosses_spearman"))
    assert held_out_lines(caplog) == []


def test_evaluation_without_tasks_suggests_a_dev_task(tmp_path):
    from biohicl.errors import ConfigError
    from biohicl.training.evaluator_checks import check_evaluation

    with pytest.raises(ConfigError) as error:
        check_evaluation(training_args(tmp_path), None)
    assert str(error.value) == "eval_strategy: evaluation during training needs --eval_tasks (e.g. pubmedqa:dev)"


def run_folder(tmp_path: Path, args: dict) -> Path:
    """A run folder that loaded its best step (70 of 0, 70, 140), with its evaluations."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    selection = {
        "loaded_best": True, "selected_base": False, "selection_metric": "eval_dev_score", "step0_metric": 0.7,
        "best_step": 70, "best_metric": 0.8, "evaluations": [[0, 0.7], [70, 0.8], [140, 0.75]],
    }  # fmt: skip
    rows = [
        {"step": s, "eval_dev_score": v, "eval_biosses_spearman": v, "eval_pubmedqa_recall@1": v}
        for s, v in ((0, 0.7), (70, 0.8), (140, 0.75))
    ]
    records = {
        "biohicl_config": {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean"},
        "biohicl_training_args": args,
        "training_summary": {"data": {"documents": 100}, "global_step": 140, "selection": selection},
        "dev_evaluations": rows,
    }
    for name, values in records.items():
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


def test_the_card_of_a_run_selected_on_held_out_data_says_so(tmp_path):
    from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card

    data = BioHiCLModelCardData.from_run_dir(run_folder(tmp_path, dict(HELD_OUT)), "BioHiCL-MiniLM")
    text = render_model_card(data)
    assert "on dev data only" not in text and "| Dev task |" not in text
    assert data.selection["held_out"] == ["biosses:all", "pubmedqa:test"]
    assert (
        "Model selection on held-out data (biosses:all, pubmedqa:test: no dev splits, so the kept step was chosen on "
        "the items those scores report and this is not a dev-selected model; tasks evaluated: biosses, pubmedqa), at "
        "steps 0, 70, 140 (step 0 is the\nbase model, a candidate too)"
    ) in text
    assert "Every metric the selection used, at step 0" in text
    assert "| Task | Metric | used in | step 0 (base) | step 70 (kept) | Δ |" in text
    # the card data round-trips through card_data.json
    data.save(tmp_path / "card_data.json")
    assert BioHiCLModelCardData.load(tmp_path / "card_data.json").selection == data.selection


def test_the_card_of_a_run_selected_on_dev_says_dev_data_only(tmp_path):
    from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card

    args = {**HELD_OUT, "eval_tasks": ["pubmedqa:dev", "biosses"], "selection_metrics": ["pubmedqa-dev_recall@1"]}
    data = BioHiCLModelCardData.from_run_dir(run_folder(tmp_path, args), "BioHiCL-MiniLM")
    text = render_model_card(data)
    assert "Model selection, on dev data only (pubmedqa:dev, biosses), at steps 0, 70, 140" in text
    assert "held-out data" not in text
    assert data.selection["held_out"] == []


def test_the_dry_run_says_it_selects_on_held_out_data(tiny_bert_dir, dataset, beir, tmp_path, capsys, no_model):  # noqa: F811
    """A BEIR folder's default split is its test split: selecting on it is said before the plan, in one line."""
    from biohicl.cli.main import main

    tasks = ["--eval_tasks", str(beir), "--eval_strategy", "steps", "--eval_steps", "2", "--max_steps", "4"]
    selects = ["--save_steps", "2", "--load_best_model_at_end", "--metric_for_best_model", "toy_ndcg@10"]
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *tasks, *selects), "--dry_run"]) == 0
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "held-out" in line)
    assert line == (
        f"model selection on held-out data: {beir}:test is no dev split, and the selection reads toy_ndcg@10, so the "
        "kept step is chosen on the items those scores report: it is not a dev-selected model and its scores there "
        "are no held-out results (its model card says so); select on dev tasks instead (pubmedqa:dev, "
        'siml-agreement, scifact:train; docs/training.md, "Model selection on dev data")'
    )
    assert err.count("model selection on held-out data") == 1


def test_the_dev_check_compares_paths_by_the_one_path_rule(monkeypatch):
    """Whether ``siml-agreement@PATH:dev`` is the run's own dataset is decided by ``data.files.resolved_path`` (the
    rule every recorded or given folder is compared by), not a copy of it."""
    import biohicl.data.files as files
    from biohicl.training.selection_splits import reads_dataset_dev

    seen = []
    monkeypatch.setattr(files, "resolved_path", lambda value: seen.append(str(value)) or Path("/one"))
    assert reads_dataset_dev("siml-agreement@/data/a:dev", "/data/b") is True
    assert seen == ["/data/a", "/data/b"]


def test_the_selection_checks_read_a_strategy_by_the_one_option_rule():
    from biohicl.training import arg_checks, run_settings

    assert arg_checks.option_value is run_settings.option_value
    assert not hasattr(arg_checks, "_value")


def test_the_held_out_warning_names_only_the_held_out_tasks_metrics():
    """A selection reading a dev metric beside a held-out one: the warning lists the held-out task's metric alone
    (the dev one is what it should select on)."""
    from biohicl.training.selection_splits import held_out_notice

    args = {**HELD_OUT, "eval_tasks": ["biosses", "pubmedqa:dev"]}
    args["selection_metrics"] = ["biosses_spearman", "pubmedqa-dev_recall@1"]
    assert held_out_notice(args).startswith(
        "model selection on held-out data: biosses:all is no dev split, and the selection reads biosses_spearman, so "
    )
