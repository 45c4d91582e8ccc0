"""What a run of several tasks applies and keeps: `--split` only where it applies (and recorded so), a model whose
embeddings are constant, a malformed BEIR folder found before the first task, the finished tasks kept when a later
one fails, and a results file of the wrong shape refused in one line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from biohicl.errors import ConfigError
from biohicl.evaluation.runner import evaluate_model

DOCS = [
    {"_id": "d1", "title": "Insulin", "text": "insulin signalling"},
    {"_id": "d2", "title": "", "text": "tumor growth"},
    {"_id": "d3", "title": "Heart", "text": "heart failure and insulin"},
]
QUERIES = [{"_id": "q1", "text": "insulin insulin"}, {"_id": "q2", "text": "heart"}]


def write_beir(folder: Path, split: str = "test", corpus: str | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(corpus or "".join(json.dumps(d) + "\n" for d in DOCS))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    return folder


class LengthEncoder:
    """Deterministic embeddings from each text's length (no model to load)."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.asarray([[len(t) % 7 + 1.0, len(t) % 3 + 1.0, 1.0] for t in texts], dtype=np.float32)


def test_a_split_that_applies_to_none_of_the_tasks_is_refused_naming_the_spec_that_picks_one(data_dir):
    """`--split dev` with pubmedqa,biosses scored PubMedQA's test split while the record said split "dev"."""
    from biohicl.evaluation.runner import check_split_applies

    with pytest.raises(ConfigError) as caught:
        check_split_applies(["pubmedqa", " biosses"], "dev")
    message = str(caught.value)
    assert message.startswith("split: dev is the split of the BEIR tasks given without one") and "\n" not in message
    assert "none of pubmedqa, biosses is one" in message and message.endswith("in its spec instead (pubmedqa:dev)")
    check_split_applies(["pubmedqa", "scifact"], "dev")  # it applies to scifact
    check_split_applies(["pubmedqa"], None)  # none given


def test_the_python_api_records_a_split_only_where_it_applied(data_dir):
    """evaluate_model keeps scoring (a notebook's SPLIT is the BEIR tasks' split, whichever tasks it runs)."""
    record = evaluate_model(LengthEncoder(), ["biosses"], split="test")
    assert record["settings"]["split"] is None and record["tasks"]["biosses"]["split"] == "all"


def test_the_cli_refuses_it_in_one_line_before_the_model_loads(tmp_path, data_dir, capsys):
    from biohicl.cli.main import main

    missing_model = str(tmp_path / "no-model-here")  # never loaded: the refusal comes first
    assert main(["evaluate", missing_model, "--tasks", "pubmedqa,biosses", "--split", "dev", "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "split: dev is the split of the BEIR tasks" in err[0] and "pubmedqa:dev" in err[0]


def test_a_split_that_applies_to_some_tasks_names_the_others_and_is_recorded_as_applied(tmp_path, data_dir, caplog):
    folder = write_beir(tmp_path / "toy", split="dev")
    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.runner"):
        record = evaluate_model(LengthEncoder(), [str(folder), "biosses", "pubmedqa:test"], split="dev")
    assert record["settings"]["split"] == "dev"
    assert {task: entry["split"] for task, entry in record["tasks"].items()} == {
        "toy": "dev",
        "biosses": "all",
        "pubmedqa": "test",
    }
    lines = [r.getMessage() for r in caplog.records if "does not apply" in r.getMessage()]
    assert lines == [
        "split: dev applies to toy; it does not apply to biosses, pubmedqa:test (a task's own split: name:split)"
    ]
    # no split given: none recorded, whatever the tasks evaluated
    assert evaluate_model(LengthEncoder(), ["biosses"])["settings"]["split"] is None


class ConstantEncoder:
    """A collapsed fine-tune: every text gets the same embedding (or NaN everywhere)."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.full((len(list(texts)), 3), self.value, dtype=np.float32)


@pytest.fixture
def collapsed_model(tmp_path) -> Path:
    """A tiny BERT whose weights are all zero: every text encodes alike."""
    import torch
    from conftest import build_tiny_bert
    from safetensors.torch import load_file, save_file

    folder = build_tiny_bert(tmp_path / "collapsed")
    weights = load_file(folder / "model.safetensors")
    save_file({k: torch.zeros_like(v) for k, v in weights.items()}, folder / "model.safetensors")
    return folder


def test_constant_or_nan_predictions_give_nan_correlations():
    from biohicl.evaluation.metrics import CorrelationMetric

    for predictions in ([0.5, 0.5, 0.5], [float("nan"), 0.1, 0.2]):
        scores = CorrelationMetric().compute(predictions=predictions, references=[1.0, 2.0, 3.0])
        assert set(scores) == {"spearman", "pearson"} and all(np.isnan(v) for v in scores.values())


@pytest.mark.parametrize("value", [1.0, float("nan")])
def test_a_collapsed_model_scores_nan_with_one_warning_in_training_and_is_cached(value, tmp_path, data_dir, caplog):
    """A collapsed fine-tune crashed the in-training evaluation with a ValueError; the cache could not store NaN.
    The harness warns for the task; training's evaluator says it in an info line, the trainer's warning naming the
    step (tests/test_nan_evaluations.py: one warning line per event)."""
    from biohicl.evaluation.evaluator import TaskEvaluator
    from biohicl.evaluation.runner import evaluate_model

    said = "biosses: spearman, pearson are NaN: the model's embeddings are constant or not finite (a collapsed model?)"
    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.runner"):
        evaluate_model(ConstantEncoder(value), ["biosses"])
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [said]
        caplog.clear()
        evaluator = TaskEvaluator(["biosses"], cache_dir=str(tmp_path / "cache"))
        metrics = evaluator(ConstantEncoder(value))
    assert set(metrics) == {"biosses_spearman", "biosses_pearson"} and all(np.isnan(v) for v in metrics.values())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert said in [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    again = evaluator(ConstantEncoder(value))  # read back from the cache: NaN again
    assert set(again) == set(metrics) and all(np.isnan(v) for v in again.values())


def test_the_cli_refuses_a_collapsed_models_nan_in_one_line(collapsed_model, tmp_path, data_dir, capsys):
    from biohicl.cli.main import main

    output = tmp_path / "out.json"
    argv = ["evaluate", str(collapsed_model), "--tasks", "biosses", "--output", str(output), "--no_progress"]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("biohicl evaluate: error: biosses: spearman, pearson are NaN")
    assert "Traceback" not in "\n".join(err) and not output.exists()


BAD_CORPUS = "".join(json.dumps(d) + "\n" for d in DOCS) + "\n{bad\n"


@pytest.mark.parametrize(
    ("broken", "text", "message"),
    [
        ("corpus.jsonl", BAD_CORPUS, "corpus.jsonl: line 5: not valid JSON"),
        ("queries.jsonl", '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n', "duplicate query id 'q1'"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tx\n", "score 'x' is not a finite number"),
    ],
)
def test_a_malformed_beir_folder_fails_the_pre_flight_before_any_task_runs(tmp_path, broken, text, message):
    """Only the files' presence was checked: a bad corpus line failed after the tasks before it had run."""
    from biohicl.errors import DataError
    from biohicl.evaluation.runner import plan_tasks

    folder = write_beir(tmp_path / "beir")
    (folder / broken).write_text(text)
    with pytest.raises(DataError, match="line") as caught:
        plan_tasks(["biosses", str(folder)])
    assert message in str(caught.value) and str(folder / broken) in str(caught.value)


def test_the_pre_flight_reads_a_folder_once_per_version(tmp_path, monkeypatch):
    from biohicl.evaluation import retrieval
    from biohicl.evaluation.runner import plan_tasks

    folder = write_beir(tmp_path / "beir")
    read = []
    real = retrieval._read_jsonl
    monkeypatch.setattr(retrieval, "_read_jsonl", lambda path: read.append(path.name) or real(path))
    plan_tasks([str(folder)])
    plan_tasks([str(folder)])  # unchanged: not read again
    assert read == ["queries.jsonl", "corpus.jsonl"]
    (folder / "corpus.jsonl").write_text(BAD_CORPUS)
    with pytest.raises(Exception, match="not valid JSON"):
        plan_tasks([str(folder)])


def test_the_finished_tasks_are_saved_when_a_later_task_fails(tiny_bert_dir, tmp_path, data_dir, monkeypatch, capsys):
    """`--tasks pubmedqa,biosses,BAD` evaluated both, then failed on BAD's corpus: nothing was written."""
    from biohicl.cli.main import main
    from biohicl.evaluation import tasks as registry

    folder = write_beir(tmp_path / "beir")
    output = tmp_path / "out.json"
    real = registry.get_task

    def failing_late(name):  # the data breaks after the pre-flight (another process rewrote it)
        if name == str(folder):
            (folder / "corpus.jsonl").write_text(BAD_CORPUS)
        return real(name)

    monkeypatch.setattr("biohicl.evaluation.runner.get_task", failing_late)
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", f"biosses,{folder},pubmedqa", "--limit_queries", "5"]
    assert main([*argv, "--output", str(output), "--device", "cpu", "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    kept = tmp_path / "out.incomplete.json"
    assert err.startswith(f"biohicl evaluate: error: {folder / 'corpus.jsonl'}: line 5: not valid JSON")
    assert err.endswith(f"; the finished task (biosses) is saved in {kept}, marked incomplete")
    assert not output.exists()
    record = json.loads(kept.read_text())
    assert list(record["tasks"]) == ["biosses"] and list(record["summary"]) == ["biosses/spearman", "biosses/pearson"]
    assert record["incomplete"]["failed"] == str(folder) and record["incomplete"]["not_run"] == ["pubmedqa"]
    assert record["incomplete"]["error"].startswith(f"{folder / 'corpus.jsonl'}: line 5: not valid JSON")
    assert record["settings"]["limit_queries"] == 5 and record["model"]["id"] == tiny_bert_dir.name


def test_an_interrupt_after_a_finished_task_keeps_it_and_says_where(tiny_bert_dir, tmp_path, data_dir, monkeypatch):
    from biohicl.cli.main import main
    from biohicl.evaluation import tasks as registry

    real = registry.get_task

    def interrupted(name):
        if name == "pubmedqa":
            raise KeyboardInterrupt
        return real(name)

    monkeypatch.setattr("biohicl.evaluation.runner.get_task", interrupted)
    output = tmp_path / "results" / "tiny"  # no suffix: the kept file is tiny.incomplete.json
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", "biosses,pubmedqa", "--output", str(output), "--no_progress"]
    assert main([*argv, "--device", "cpu"]) == 130
    record = json.loads((tmp_path / "results" / "tiny.incomplete.json").read_text())
    assert list(record["tasks"]) == ["biosses"]
    assert record["incomplete"] == {"failed": "pubmedqa", "error": "interrupted", "not_run": []}
    assert not output.exists()


GOOD_TASK = {"split": "all", "main_metric": "spearman", "metrics": {"spearman": 0.5, "pearson": 0.4}}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"tasks": ["biosses"]}, "`tasks` is not a mapping of task names to results"),
        ({"tasks": {"biosses": 0.5}}, "task 'biosses': its entry is not a mapping (got float)"),
        ({"tasks": {"biosses": {"split": "all"}}}, "task 'biosses': no `metrics`"),
        ({"tasks": {"biosses": {"metrics": {"spearman": "high"}}}}, "task 'biosses': metric 'spearman' is 'high'"),
        ({"tasks": {"biosses": {**GOOD_TASK, "split": 3}}}, "task 'biosses': `split` is not a string (got int)"),
        ({"tasks": {"biosses": GOOD_TASK}, "model": "tiny"}, "`model` is not a mapping (got str)"),
        ({"tasks": {"biosses": GOOD_TASK}, "settings": [1]}, "`settings` is not a mapping (got list)"),
    ],
)
def test_a_results_file_of_the_wrong_shape_is_refused_naming_the_file_and_task(tmp_path, record, message):
    """load_results checked only that `tasks` exists: --compare then crashed with KeyError 'metrics' or an
    AttributeError."""
    from biohicl.errors import DataError
    from biohicl.evaluation.runner import load_results

    path = tmp_path / "hand-edited.json"
    path.write_text(json.dumps(record))
    with pytest.raises(DataError) as caught:
        load_results(path)
    assert str(caught.value).startswith(f"{path}: not a biohicl evaluation results file: {message}")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"tasks": {"biosses": GOOD_TASK}, "model": {"id": "m"}}))
    assert load_results(good)["tasks"]["biosses"]["metrics"]["spearman"] == 0.5


def test_compare_refuses_a_foreign_file_in_one_line(tmp_path, capsys):
    from biohicl.cli.main import main

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"tasks": {"biosses": GOOD_TASK}}))
    b.write_text(json.dumps({"tasks": {"biosses": {"spearman": 0.6}}}))  # metrics not under `metrics`
    assert main(["evaluate", "--compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"biohicl evaluate: error: {b}: not a biohicl evaluation results file: task 'biosses': no `metrics`"]
