"""The harness evaluator a training run evaluates with: task specs from the run's arguments, the harness record
flattened to metrics, and nothing of it imported by the training package."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from biohicl.errors import ConfigError
from biohicl.evaluation import runner
from biohicl.evaluation.evaluator import TaskEvaluator, evaluator_from_args, flatten_metrics, resolve_eval_tasks


def test_dataset_eval_tasks_get_the_runs_dataset():
    tasks = ["siml-agreement", "siml-agreement:dev", "pubmedqa:dev", "scifact:train"]
    assert resolve_eval_tasks(tasks, "runs/mesh-pairs") == [
        "siml-agreement@runs/mesh-pairs", "siml-agreement@runs/mesh-pairs:dev", "pubmedqa:dev", "scifact:train"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"eval_tasks: siml-agreement .* needs dataset_path"):
        resolve_eval_tasks(["siml-agreement"], None)


def test_evaluator_from_args():
    args = SimpleNamespace(
        eval_tasks=["biosses", "siml-agreement"], dataset_path="runs/pairs", eval_max_queries=50, eval_cache_dir="c"
    )
    evaluator = evaluator_from_args(args)
    assert evaluator.tasks == ["biosses", "siml-agreement@runs/pairs"] and evaluator.max_queries == 50
    assert evaluator.cache_dir == "c"
    none = SimpleNamespace(eval_tasks=[], dataset_path=None, eval_max_queries=None, eval_cache_dir=None)
    assert evaluator_from_args(none) is None
    with pytest.raises(ConfigError, match="eval_tasks: no evaluation task given"):
        TaskEvaluator([])


def test_task_evaluator_runs_the_harness_and_flattens_its_summary(monkeypatch):
    seen = []

    def evaluate_model(model, tasks, **kwargs):
        seen.append((model, tasks, kwargs))
        # the harness's record shape: a summary keyed task/metric beside per-task details
        return {"summary": {"biosses/spearman": 0.8, "pubmedqa-dev/recall@1": 0.5}, "tasks": {"biosses": {}}}

    monkeypatch.setattr(runner, "evaluate_model", evaluate_model)
    metrics = TaskEvaluator(["biosses", "pubmedqa:dev"], max_queries=7)("model")
    assert metrics == {"biosses_spearman": 0.8, "pubmedqa-dev_recall@1": 0.5}
    assert seen == [
        (
            "model",
            ["biosses", "pubmedqa:dev"],
            {"batch_size": 32, "limit_queries": 7, "show_progress_bar": False, "warn_nan": False},
        )
    ]


def test_flatten_metrics_keeps_numbers_only():
    nested = {"a/b": 1, "t": {"m": 0.5, "note": "x", "flag": True, "inner": {"k": 2.0}}}
    assert flatten_metrics(nested) == {"a_b": 1.0, "t_m": 0.5, "t_inner_k": 2.0}


def test_training_never_imports_the_evaluation_package():
    code = (
        "import sys, biohicl.training.run, biohicl.training.trainer, biohicl.training.args; "
        "print([m for m in sys.modules if m.startswith('biohicl.evaluation')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metric_names_are_the_keys_an_evaluation_returns(tmp_path, data_dir):
    """Known before evaluating (a run checks its selection metrics against them before training), and equal to what
    an evaluation then returns, for every kind of task: a BEIR folder, a registered task, a dev split."""
    from test_evaluation import KeywordEncoder, write_beir

    folder = write_beir(tmp_path / "tiny-beir")
    evaluator = TaskEvaluator([str(folder), "biosses", "pubmedqa:dev"])
    names = evaluator.metric_names()
    assert names == [
        "tiny-beir_ndcg@10", "tiny-beir_recall@100", "tiny-beir_mrr@10", "biosses_spearman", "biosses_pearson",
        "pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5",
    ]  # fmt: skip
    assert sorted(evaluator(KeywordEncoder())) == sorted(names)


def test_metric_names_of_split_and_dataset_tasks(tmp_path, data_dir):
    path = tmp_path / "docs.jsonl"
    rows = [{"pmid": str(i), "title": "t", "abstract": "a", "mesh": ["D003920"], "label_kind": "indexing",
             "source": "x", "split": "dev"} for i in range(3)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert TaskEvaluator(["scifact:train", f"siml-agreement@{path}", "pubmedqa"]).metric_names() == [
        "scifact_ndcg@10", "scifact_recall@100", "scifact_mrr@10", "siml-agreement_spearman",
        "pubmedqa_recall@1", "pubmedqa_recall@5",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="does not exist"):  # the tasks' data is checked with the names
        TaskEvaluator([f"siml-agreement@{tmp_path / 'nope'}"]).metric_names()
    with pytest.raises(ConfigError, match="unknown task 'scifakt'"):
        TaskEvaluator(["scifakt"]).metric_names()


def test_the_eval_batch_size_of_the_arguments_is_the_encoders_and_leaves_the_metrics(
    tiny_bert_dir, tmp_path, data_dir, monkeypatch
):
    """--per_device_eval_batch_size was ignored: the harness always encoded 32 texts at a time."""
    from collections import Counter

    from test_evaluation import write_beir

    from biohicl.models.model import BioHiCL
    from biohicl.training.args import BioHiCLTrainingArguments

    seen = Counter()
    original = BioHiCL.iter_encode

    def iter_encode(self, texts, batch_size=32, *args, **kwargs):
        seen[batch_size] += 1
        return original(self, texts, batch_size, *args, **kwargs)

    monkeypatch.setattr(BioHiCL, "iter_encode", iter_encode)
    folder = write_beir(tmp_path / "tiny-beir")
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32).eval()
    metrics = {}
    for batch_size in (8, 128):
        args = BioHiCLTrainingArguments(
            output_dir=str(tmp_path / "run"),
            eval_tasks=[str(folder), "biosses"],
            per_device_eval_batch_size=batch_size,
            use_cpu=True,
            report_to="none",
        )
        evaluator = evaluator_from_args(args)
        assert evaluator.batch_size == batch_size
        seen.clear()
        metrics[batch_size] = evaluator(model)
        assert set(seen) == {batch_size}
    assert metrics[8].keys() == metrics[128].keys() and len(metrics[8]) == 5
    assert metrics[8] == pytest.approx(metrics[128], abs=1e-6)
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path / "x"), report_to="none").per_device_eval_batch_size == 32
    with pytest.raises(ConfigError, match=r"per_device_eval_batch_size: 0 is not a positive int"):
        TaskEvaluator(["biosses"], batch_size=0)
