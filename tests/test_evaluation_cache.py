"""Evaluations kept by encoder, tasks and data: an identical encoder is read back, anything else is evaluated."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest
from conftest import randomize_lora_b, synthetic_documents

from biohicl.evaluation import runner
from biohicl.evaluation.cache import encoder_fingerprint, evaluation_key
from biohicl.evaluation.evaluator import TaskEvaluator


class ShiftEncoder:
    """Deterministic embeddings that depend on ``shift`` (two shifts = two different encoders)."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        rows = [[len(t) % 7 + self.shift, float(kind == "query"), 1.0] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def rewrite(path, text: str) -> None:
    """Write ``text`` over ``path`` and move its mtime on by a second: the key has each file's size and mtime, and a
    rewrite of the same size within one tick of a coarse filesystem clock would otherwise look like no edit."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_an_identical_encoder_is_read_back_and_a_different_one_evaluated(tmp_path, counting_harness):
    evaluator = TaskEvaluator(["biosses"], cache_dir=str(tmp_path / "cache"))
    first = evaluator(ShiftEncoder(0.0))
    again = evaluator(ShiftEncoder(0.0))  # a new object with the same outputs
    assert again == first == {"biosses_spearman": pytest.approx(2 + 0 + 1.0)}  # len("metformin") % 7 = 2
    assert counting_harness == [["biosses"]]
    other = evaluator(ShiftEncoder(0.5))
    assert other == {"biosses_spearman": pytest.approx(first["biosses_spearman"] + 0.5)}
    assert len(counting_harness) == 2
    # other tasks or another query cap are another evaluation
    TaskEvaluator(["biosses", "pubmedqa:dev"], cache_dir=str(tmp_path / "cache"))(ShiftEncoder(0.0))
    TaskEvaluator(["biosses"], max_queries=5, cache_dir=str(tmp_path / "cache"))(ShiftEncoder(0.0))
    assert len(counting_harness) == 4
    records = sorted((tmp_path / "cache").glob("*.json"))
    assert len(records) == 4
    assert {tuple(json.loads(p.read_text())["tasks"]) for p in records} == {("biosses",), ("biosses", "pubmedqa:dev")}


def test_without_a_cache_every_call_evaluates(counting_harness):
    evaluator = TaskEvaluator(["biosses"])
    evaluator(ShiftEncoder())
    evaluator(ShiftEncoder())
    assert len(counting_harness) == 2


def test_a_changed_dataset_folder_is_a_new_key(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "dev.jsonl").write_text('{"id": 1}\n')
    tasks = [f"siml-agreement@{folder}"]
    key = evaluation_key(ShiftEncoder(), tasks)
    assert evaluation_key(ShiftEncoder(), tasks) == key
    (folder / "dev.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    assert evaluation_key(ShiftEncoder(), tasks) != key


def test_a_beir_folder_task_is_keyed_by_where_it_is_and_what_is_in_it(tmp_path, monkeypatch):
    """The same relative BEIR path typed in two directories names two folders: two keys, as an edit in place is."""
    for sub, relevant in (("a", "d0"), ("b", "d4")):
        qrels = tmp_path / sub / "beir" / "qrels"
        qrels.mkdir(parents=True)
        (qrels / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\t{relevant}\t1\n")
    monkeypatch.chdir(tmp_path / "a")
    key_a = evaluation_key(ShiftEncoder(), ["beir:test"])
    assert evaluation_key(ShiftEncoder(), ["beir:test"]) == key_a
    monkeypatch.chdir(tmp_path / "b")
    assert evaluation_key(ShiftEncoder(), ["beir:test"]) != key_a
    monkeypatch.chdir(tmp_path / "a")
    rewrite(tmp_path / "a" / "beir" / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert evaluation_key(ShiftEncoder(), ["beir:test"]) != key_a
    assert evaluation_key(ShiftEncoder(), ["biosses"]) == evaluation_key(ShiftEncoder(), ["biosses"])  # not a folder


def test_an_edited_file_of_a_registered_tasks_data_folder_is_a_new_key(tmp_path, monkeypatch):
    """Registered tasks were keyed by the data directory's path alone: an edited SciFact qrels read back stale
    metrics. Their folder's files are in the key now; another task's folder is not."""
    qrels = tmp_path / "data" / "scifact" / "qrels" / "train.tsv"
    qrels.parent.mkdir(parents=True)
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    (tmp_path / "data" / "biosses").mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "data"))
    key = evaluation_key(ShiftEncoder(), ["scifact:train"])
    biosses = evaluation_key(ShiftEncoder(), ["biosses"])
    rewrite(qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\n")  # same size, another document
    assert evaluation_key(ShiftEncoder(), ["scifact:train"]) != key
    assert evaluation_key(ShiftEncoder(), ["biosses"]) == biosses
    assert evaluation_key(ShiftEncoder(), ["pubmedqa:dev"]) == evaluation_key(ShiftEncoder(), ["pubmedqa:dev"])


def test_a_changed_documents_file_of_a_dataset_task_is_a_new_key(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": 1, "mesh": ["D003920"]}\n')
    tasks = [f"siml-agreement@{path}"]
    key = evaluation_key(ShiftEncoder(), tasks)
    rewrite(path, '{"id": 1, "mesh": ["D001943"]}\n')  # other labels, same size
    assert evaluation_key(ShiftEncoder(), tasks) != key


def test_an_empty_summary_gives_no_metrics_not_the_record(counting_harness, monkeypatch):
    monkeypatch.setattr(runner, "evaluate_model", lambda model, tasks, **kwargs: {"format": 1, "summary": {}})
    assert TaskEvaluator(["biosses"])(ShiftEncoder()) == {}


def test_changed_code_is_a_new_key(monkeypatch):
    from biohicl.evaluation import cache
    from biohicl.evaluation.record_model import library_versions

    key = evaluation_key(ShiftEncoder(), ["biosses"])
    assert cache.code_fingerprint() == library_versions()["biohicl_source"]  # the sources, as records name them
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "a metric was fixed since")
    assert evaluation_key(ShiftEncoder(), ["biosses"]) != key


def test_an_unreadable_record_is_evaluated_again(tmp_path, counting_harness):
    cache_dir = tmp_path / "cache"
    evaluator = TaskEvaluator(["biosses"], cache_dir=str(cache_dir))
    expected = evaluator(ShiftEncoder())
    (record,) = cache_dir.glob("*.json")
    record.write_text("{ not json")
    assert evaluator(ShiftEncoder()) == expected
    assert len(counting_harness) == 2
    assert json.loads(record.read_text())["metrics"] == expected  # rewritten whole


def test_lora_at_initialisation_is_its_base_bit_for_bit(tiny_bert_dir):
    """Why a study's step 0 is shared: LoRA's B starts at zero, whatever A its seed draws."""
    import torch

    from biohicl.models.model import BioHiCL

    base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    adapted = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
        model.add_lora(r=4, target_modules=["query", "value"])
        model.eval()
        adapted.append(model)
    base.eval()
    fingerprints = {encoder_fingerprint(m) for m in (base, *adapted)}
    assert len(fingerprints) == 1
    randomize_lora_b(adapted[1], std=1e-3, generator=torch.Generator().manual_seed(0))
    assert encoder_fingerprint(adapted[1]) != encoder_fingerprint(base)
    shorter = BioHiCL.from_base(str(tiny_bert_dir), max_length=16)  # the probe's long text sees truncation
    shorter.eval()
    assert encoder_fingerprint(shorter) != encoder_fingerprint(base)


def test_runs_of_one_base_share_step_0(tiny_bert_dir, tmp_path, counting_harness):
    """Two seeds with --eval_cache_dir: the second run's step 0 is read back, equal to what it would evaluate."""
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    cache_dir = tmp_path / "cache"

    def run(seed: int, cache: str | None):
        args = BioHiCLTrainingArguments(
            output_dir=str(tmp_path / f"run{seed}-{bool(cache)}"), base_model=str(tiny_bert_dir),
            dataset_path=str(docs), max_steps=2, per_device_train_batch_size=8, max_length=32, seed=seed,
            eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, eval_tasks=["biosses"],
            metric_for_best_model="eval_biosses_spearman", load_best_model_at_end=True, eval_cache_dir=cache,
            use_cpu=True, report_to="none", disable_tqdm=True, lora_target_modules=["query", "value"],
        )  # fmt: skip
        folder = train_biohicl(args, evaluator=TaskEvaluator(["biosses"], cache_dir=cache))
        state = json.loads((folder / "trainer_state.json").read_text())
        return {e["step"]: e["eval_biosses_spearman"] for e in state["log_history"] if "eval_biosses_spearman" in e}

    first = run(0, str(cache_dir))
    assert len(counting_harness) == 2  # step 0 and step 2
    second = run(1, str(cache_dir))
    assert len(counting_harness) == 3  # step 2 only: step 0 was read back
    assert second[0] == first[0]
    uncached = run(1, None)
    assert uncached[0] == second[0]  # what the second run would have measured itself
    assert len(counting_harness) == 5
    assert len(list(cache_dir.glob("*.json"))) == 3  # one base, two different step-2 models


def test_a_study_evaluates_step_0_once_before_its_workers(tiny_bert_dir, tmp_path, counting_harness, monkeypatch):
    """`reproduce --workers` evaluates the runs' shared step 0 once first; each run's step 0 then reads it back."""
    import yaml

    import biohicl.study as study_package
    from biohicl.cli import reproduce as command
    from biohicl.study import ReproduceConfig, evaluate_step0_once, plan_study, prepare_dataset
    from biohicl.study import execute as execute_module
    from biohicl.study.config import training_arguments

    config = ReproduceConfig.from_dict({
        "title": "step 0 once", "output_dir": str(tmp_path / "study"),
        "dataset": {"path": str(tmp_path / "dataset"), "limit": 24, "top_k": 3,
                    "inputs": [{"source": "pubmedqa", "files": ["pubmedqa/ori_pqal.json"]}]},
        "models": [{"name": "tiny", "model": str(tiny_bert_dir), "pooling": "mean", "max_length": 24}],
        "seeds": [0, 1], "tasks": ["biosses"],
        "variants": {"full": {}, "no_mse": {"use_mse": False}},
        "training": {"max_steps": 2, "per_device_train_batch_size": 8, "eval_strategy": "steps", "eval_steps": 2,
                     "save_strategy": "steps", "save_steps": 2, "eval_tasks": ["biosses"],
                     "metric_for_best_model": "eval_biosses_spearman", "load_best_model_at_end": True},
    })  # fmt: skip
    dataset_path, _ = prepare_dataset(config, progress=False)
    assert evaluate_step0_once(config, dataset_path) == 1  # four runs, one base (LoRA starts at zero)
    assert len(counting_harness) == 1
    cached = list((tmp_path / "study" / "eval_cache").glob("*.json"))
    assert len(cached) == 1
    assert evaluate_step0_once(config, dataset_path) == 1 and len(counting_harness) == 1  # read back

    run = next(r for r in plan_study(config) if r.variant == "no_mse" and r.seed == 1)
    args = training_arguments(config, config.models[0], run.variant, run.seed, dataset_path, run.run_dir)
    folder = execute_module.train_run(args)
    assert len(counting_harness) == 2  # its step 2 only
    state = json.loads((folder / "trainer_state.json").read_text())
    step0 = next(e["eval_biosses_spearman"] for e in state["log_history"] if e.get("step") == 0 and "eval_runtime" in e)
    assert step0 == json.loads(cached[0].read_text())["metrics"]["biosses_spearman"]

    # the CLI does it before it starts the workers (here replaced by a recorder), not without --workers
    calls = []
    monkeypatch.setattr(study_package, "evaluate_step0_once", lambda c, d: calls.append(len(c.variants)) or 0)
    monkeypatch.setattr(command, "run_workers", lambda *a: [])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    assert command.main(["--config", str(path), "--workers", "2"]) == 1  # the stand-in workers trained nothing
    assert calls == [2]
    command.main(["--config", str(path), "--report_only"])
    assert calls == [2]


def test_a_task_registered_again_with_another_function_is_a_new_key(tmp_path, monkeypatch):
    """The key names the function a registered task runs: re-registering ``toy`` with other code (or other
    reported metrics) is never read back as the old metrics; a function without readable source is never a hit."""
    from biohicl.evaluation import tasks as registry

    for table in (registry.TASKS, registry.REPORTED_METRICS, registry.DATA_FOLDERS):
        monkeypatch.setitem(table, "toy", None)
    # with a data folder: a task without one is never read back (tests/test_evaluation_cache_own_tasks.py)
    register = functools.partial(registry.register_task, data_folder=str(tmp_path))

    def first(encoder, **kwargs):
        return 1.0

    def second(encoder, **kwargs):
        return 2.0

    register("toy", first, reported=["score"])
    key = evaluation_key(ShiftEncoder(), ["toy"])
    assert evaluation_key(ShiftEncoder(), ["toy"]) == key
    register("toy", second, reported=["score"])
    other = evaluation_key(ShiftEncoder(), ["toy"])
    assert other != key
    register("toy", second, reported=["score", "other"])
    assert evaluation_key(ShiftEncoder(), ["toy"]) not in (key, other)
    unreadable = eval("lambda encoder, **kwargs: 3.0")  # no source file to read
    register("toy", unreadable, reported=["score"])
    assert evaluation_key(ShiftEncoder(), ["toy"]) != evaluation_key(ShiftEncoder(), ["toy"])
    assert registry.is_builtin_task("biosses") and not registry.is_builtin_task("toy")

    def make_task(path, scale=1.0):  # one factory, two data files: the same source, other values
        def task(encoder, **kwargs):
            return {"score": scale * len(path)}

        return task

    keys = []
    for task in (make_task("a.jsonl"), make_task("bb.jsonl"), make_task("a.jsonl"), make_task("a.jsonl", 2.0)):
        register("toy", task, reported=["score"])
        keys.append(evaluation_key(ShiftEncoder(), ["toy"]))
    assert keys[0] == keys[2] and len(set(keys)) == 3
    register("toy", functools.partial(second, unit="b"), reported=["score"])
    partial_key = evaluation_key(ShiftEncoder(), ["toy"])
    register("toy", functools.partial(second, unit="c"), reported=["score"])
    assert evaluation_key(ShiftEncoder(), ["toy"]) != partial_key
    register("toy", make_task(object()), reported=["score"])  # known only by its identity
    assert evaluation_key(ShiftEncoder(), ["toy"]) != evaluation_key(ShiftEncoder(), ["toy"])
    weights = np.zeros(5000)  # numpy shortens a long array's repr: two arrays differing in the middle look alike
    changed = weights.copy()
    changed[2500] = 1.0
    array_keys = []
    for values in (weights, weights.copy(), changed):
        register("toy", make_task(values), reported=["score"])
        array_keys.append(evaluation_key(ShiftEncoder(), ["toy"]))
    assert array_keys[0] == array_keys[1] != array_keys[2]
    register("toy", make_task("notes..."), reported=["score"])  # a shortened-looking text: no hit
    assert evaluation_key(ShiftEncoder(), ["toy"]) != evaluation_key(ShiftEncoder(), ["toy"])


def test_the_command_line_shows_that_an_evaluation_was_read_back(tmp_path, counting_harness, capsys):
    """``--eval_cache_dir`` users see on the console which evaluations were shared, as training.md says."""
    from biohicl.cli.progress import show_progress

    evaluator = TaskEvaluator(["biosses"], cache_dir=str(tmp_path / "cache"))
    evaluator(ShiftEncoder(0.0))
    show_progress()
    capsys.readouterr()
    evaluator(ShiftEncoder(0.0))
    (record,) = (tmp_path / "cache").glob("*.json")
    assert f"evaluation read back from {record} (the same encoder, tasks and data)\n" in capsys.readouterr().out


def test_a_beir_folder_whose_path_has_an_at_sign_is_keyed_by_its_own_files(tmp_path):
    """`/x/at@dir/beir` is a BEIR folder to get_task (no dataset task is named `/x/at`), but the key parsed any `@`
    as siml-agreement@DATASET and fingerprinted `dir/beir`: an edited qrels read back the old nDCG."""
    qrels = tmp_path / "at@dir" / "beir" / "qrels" / "test.tsv"
    qrels.parent.mkdir(parents=True)
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    tasks = [str(tmp_path / "at@dir" / "beir")]
    key = evaluation_key(ShiftEncoder(), tasks)
    rewrite(qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\n")  # same size, another relevant document
    assert evaluation_key(ShiftEncoder(), tasks) != key
    # a dataset task's split and hierarchy are parsed as get_task parses them: `:dev` is no part of the folder
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "dev.jsonl").write_text('{"id": 1}\n')
    dev = evaluation_key(ShiftEncoder(), [f"siml-agreement@{pairs}:dev"])
    rewrite(pairs / "dev.jsonl", '{"id": 2}\n')
    assert evaluation_key(ShiftEncoder(), [f"siml-agreement@{pairs}:dev"]) != dev


class LengthEncoder(ShiftEncoder):
    """An encoder truncating at ``max_length`` tokens whose probe embeddings do not show it (a length above the
    longest probe text: two such lengths encode the probes alike, and longer texts of a task unlike)."""

    def __init__(self, max_length: int, truncation_side: str = "right") -> None:
        super().__init__()
        self.config = type("Config", (), {"max_length": max_length})()
        self.tokenizer = type("Tokenizer", (), {"truncation_side": truncation_side})()


def test_the_max_length_and_truncation_side_are_in_the_key():
    """The longest probe text is 1,142 WordPiece tokens: a model evaluated at 4500, then 8000 tokens read back the
    4500 tokens' metrics."""
    key = evaluation_key(LengthEncoder(4500), ["biosses"])
    assert encoder_fingerprint(LengthEncoder(4500)) == encoder_fingerprint(LengthEncoder(8000))  # the probes alike
    assert evaluation_key(LengthEncoder(4500), ["biosses"]) == key
    assert evaluation_key(LengthEncoder(8000), ["biosses"]) != key
    assert evaluation_key(LengthEncoder(4500, "left"), ["biosses"]) != key
