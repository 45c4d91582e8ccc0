"""``--train_splits`` (issue #15's evidence audit, session 35): ``test``, the dataset's held-out split (PubMedQA's 500
test abstracts), is refused in one line; ``dev`` is refused while a task scoring on the dataset's dev documents selects
the step (the kept step would be chosen on its own training documents), and trains otherwise."""

from __future__ import annotations

import pytest

from biohicl.cli.main import main
from tests.test_train_dry_run import dataset, no_model, options  # noqa: F401 (fixtures)

SELECTS = ["--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2", "--max_steps", "4"]
SELECTS += ["--load_best_model_at_end"]
TEST_REFUSED = (
    "biohicl train: error: train_splits: test is the dataset's held-out split (PubMedQA's test abstracts, the items a "
    "reported PubMedQA score asks about), kept in the dataset to be left out and never trained on; train on train (or "
    "train dev)"
)


def dev_refused(tasks: str) -> str:
    return (
        "biohicl train: error: train_splits: dev trains on the dev documents that the selection "
        f"(--load_best_model_at_end) scores on with {tasks}, so the kept step would be chosen on its own training "
        "documents; leave dev out of --train_splits, or train on it without selecting a step (no "
        "--load_best_model_at_end)"
    )


def test_training_on_the_test_split_is_refused(tiny_bert_dir, dataset, tmp_path, capsys, no_model):  # noqa: F811
    argv = options(tiny_bert_dir, dataset, tmp_path / "run", "--max_steps", "2", "--train_splits", "train", "test")
    assert main([*argv, "--dry_run"]) == 2
    assert capsys.readouterr().err.strip() == TEST_REFUSED


@pytest.mark.parametrize(
    ("selection", "tasks"),
    [
        (["--eval_tasks", "pubmedqa:dev", "--metric_for_best_model", "pubmedqa-dev_recall@1"], "pubmedqa:dev"),
        (
            [
                *["--eval_tasks", "pubmedqa:dev", "siml-agreement", "--selection_metrics", "siml-agreement_spearman"],
                *["--selection_guard", "pubmedqa-dev_recall@1"],
            ],
            "pubmedqa:dev and siml-agreement",
        ),
    ],
)
def test_training_on_the_dev_documents_a_selection_scores_on_is_refused(
    tiny_bert_dir,
    dataset,  # noqa: F811
    tmp_path,
    capsys,
    no_model,  # noqa: F811
    selection,
    tasks,
):
    argv = options(tiny_bert_dir, dataset, tmp_path / "run", *SELECTS, *selection, "--train_splits", "train", "dev")
    assert main([*argv, "--dry_run"]) == 2
    assert capsys.readouterr().err.strip() == dev_refused(tasks)


def test_training_on_dev_without_selecting_on_it_trains(tiny_bert_dir, dataset, tmp_path, capsys, no_model):  # noqa: F811
    argv = options(tiny_bert_dir, dataset, tmp_path / "run", "--max_steps", "2", "--train_splits", "train", "dev")
    assert main([*argv, "--dry_run"]) == 0
    assert f"  documents: 24 of 24 in {dataset} (split train, dev);" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"eval_tasks": ["pubmedqa:dev"], "metric_for_best_model": "pubmedqa-dev_recall@1"}, True),
        ({"eval_tasks": ["pubmedqa-context:dev"], "metric_for_best_model": "pubmedqa-context-dev_recall@1"}, True),
        ({"eval_tasks": ["siml-agreement:dev"], "metric_for_best_model": "siml-agreement_spearman"}, True),
        ({"eval_tasks": ["siml-agreement@DATASET"], "metric_for_best_model": "siml-agreement_spearman"}, True),
        # another dataset's dev documents, SciFact's train queries, a BEIR folder's dev split: none is trained on
        ({"eval_tasks": ["siml-agreement@other"], "metric_for_best_model": "siml-agreement_spearman"}, False),
        ({"eval_tasks": ["scifact:train"], "metric_for_best_model": "scifact_ndcg@10"}, False),
        ({"eval_tasks": ["nfcorpus:dev"], "metric_for_best_model": "nfcorpus_ndcg@10"}, False),
        # evaluated beside the selection, not selected on
        ({"eval_tasks": ["pubmedqa:dev", "scifact:train"], "metric_for_best_model": "scifact_ndcg@10"}, False),
        # no step selected: the run keeps its last step
        ({"eval_tasks": ["pubmedqa:dev"], "metric_for_best_model": "pubmedqa-dev_recall@1", "load": False}, False),
    ],
)
def test_which_selections_read_the_dev_documents_trained_on(tmp_path, settings, refused):
    from biohicl.errors import ConfigError
    from biohicl.training.selection_splits import check_train_splits

    data = tmp_path / "ds"
    data.mkdir()
    settings = dict(settings)
    load = settings.pop("load", True)
    settings["eval_tasks"] = [t.replace("DATASET", str(data)) for t in settings["eval_tasks"]]
    args = {**settings, "train_splits": ["train", "dev"], "dataset_path": str(data), "load_best_model_at_end": load}
    if refused:
        with pytest.raises(ConfigError, match=r"^train_splits: dev trains on the dev documents "):
            check_train_splits(args)
    else:
        check_train_splits(args)
        check_train_splits({**args, "train_splits": ["train"]})
