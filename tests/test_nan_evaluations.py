"""NaN evaluations (a collapsed model): a NaN (or infinite) dev metric is never the selected step, by
``best_evaluation`` or by the trainer's own best tracking; a retrieval task whose encoder returns NaN embeddings scores
NaN in training (one warning naming the step) instead of stopping the run, while direct callers are still refused;
a study run's NaN evaluation is refused in one line naming the run, and its ``eval.json`` is not written."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from biohicl.errors import DataError
from biohicl.training.selection import best_evaluation, read_summary, selection_record
from tests.conftest import synthetic_documents

NAN, INF = float("nan"), float("inf")
KEY = "eval_biosses_spearman"


# -- best_evaluation and the selection record


@pytest.mark.parametrize(
    ("history", "greater", "best"),
    [
        ([(0, NAN), (2, 0.3), (4, 0.5), (6, 0.4)], True, (4, 0.5)),  # a NaN step 0 was kept: nothing compares greater
        ([(0, NAN), (2, 0.3), (4, 0.1)], False, (4, 0.1)),
        ([(0, 0.2), (2, NAN), (4, 0.1)], True, (0, 0.2)),
        ([(0, 0.2), (2, INF), (4, 0.3)], True, (4, 0.3)),  # an infinite score is no real one either
        ([(0, 0.2), (2, -INF), (4, 0.3)], False, (0, 0.2)),
        ([(2, NAN), (4, 0.3), (6, 0.3)], True, (4, 0.3)),  # a tie still keeps the earlier finite step
    ],
)
def test_a_nan_or_infinite_value_is_never_the_best(history, greater, best):
    assert best_evaluation(history, greater_is_better=greater) == best


def test_when_no_value_is_finite_the_first_evaluation_is_kept():
    step, value = best_evaluation([(0, NAN), (2, NAN), (4, INF)])
    assert step == 0 and math.isnan(value)
    record = selection_record([{"step": 0, KEY: NAN}, {"step": 2, KEY: NAN}], KEY, True, loaded_best=True)
    assert record is not None and record["best_step"] == 0 and record["selected_base"] is True


def test_a_nan_step_0_is_not_the_selected_base():
    history = [{"step": 0, KEY: NAN}, {"step": 2, KEY: 0.3}, {"step": 4, KEY: 0.5}]
    record = selection_record(history, KEY, greater_is_better=True, loaded_best=True)
    assert record is not None and (record["best_step"], record["best_metric"]) == (4, 0.5)
    assert record["selected_base"] is False and math.isnan(record["step0_metric"])


def test_the_warning_of_a_run_whose_evaluations_are_all_nan_says_so():
    from biohicl.training.selection import selection_warning

    history = [{"step": 0, KEY: NAN}, {"step": 2, KEY: NAN}, {"step": 4, KEY: INF}]
    record = selection_record(history, KEY, greater_is_better=True, loaded_best=True)
    assert selection_warning(record, history) == (
        "model selection: no evaluation gave a finite eval_biosses_spearman (3, all NaN or infinite), so step 0 is "
        "kept; the run ends with the base model's weights"
    )
    unloaded = selection_record(history, KEY, greater_is_better=True, loaded_best=False)  # no weights loaded
    assert selection_warning(unloaded, history) == (
        "model selection: no evaluation gave a finite eval_biosses_spearman (3, all NaN or infinite), so no step is "
        "selected; the run ends with its last step's weights"
    )
    # the base kept over finite later steps: the message as before, the NaN steps left out of "best later"
    kept = [{"step": 0, KEY: 0.6}, {"step": 2, KEY: NAN}, {"step": 4, KEY: 0.5}]
    record = selection_record(kept, KEY, greater_is_better=True, loaded_best=True)
    assert selection_warning(record, kept) == (
        "model selection: no evaluation beat step 0 (eval_biosses_spearman = 0.6000, best later 0.5000); the run ends "
        "with the base model's weights"
    )
    chosen = selection_record([{"step": 0, KEY: NAN}, {"step": 2, KEY: 0.3}], KEY, True, loaded_best=True)
    assert selection_warning(chosen, []) is None


@pytest.mark.parametrize("history", [[(2, NAN), (4, INF)], [(0, NAN), (2, NAN)]], ids=["no-step-0", "step-0"])
def test_a_run_that_loads_nothing_and_has_no_finite_evaluation_selects_no_step(history):
    """best_step was the first evaluated step (2) and the warning said "so step 2 is kept", while the run ended with
    its last step's weights (metric_for_best_model without load_best_model_at_end)."""
    from biohicl.training.selection import selection_summary, selection_warning

    log = [{"step": step, KEY: value} for step, value in history]
    record = selection_record(log, KEY, greater_is_better=True, loaded_best=False)
    assert record is not None and (record["best_step"], record["best_metric"], record["selected_base"]) == (
        None,
        None,
        False,
    )
    assert [s for s, _ in record["evaluations"]] == [s for s, _ in history]
    assert selection_warning(record, log) == (
        "model selection: no evaluation gave a finite eval_biosses_spearman (2, all NaN or infinite), so no step is "
        "selected; the run ends with its last step's weights"
    )
    summary = selection_summary(record)
    assert (summary["best_step"], summary["best_metric"], summary["selected_base"]) == (None, None, False)


# -- the in-training evaluator: NaN embeddings give NaN metrics


class LengthEncoder:
    """Deterministic embeddings from each text's length (no model to load)."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.asarray([[len(t) % 7 + 1.0, len(t) % 3 + 1.0, 1.0] for t in texts], dtype=np.float32)


class NanQueries(LengthEncoder):
    """Queries embedded as NaN (a collapsed model's retrieval): BIOSSES (documents only) scores, a retrieval task
    cannot."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        rows = super().encode(texts, batch_size, kind, show_progress_bar)
        return np.full_like(rows, np.nan) if kind == "query" else rows


def test_a_retrieval_task_with_nan_embeddings_scores_nan_in_training_and_the_next_task_still_runs(data_dir, caplog):
    """The in-training evaluation raised the retrieval DataError, which stopped training."""
    from biohicl.evaluation.evaluator import TaskEvaluator

    evaluator = TaskEvaluator(["pubmedqa", "biosses"], max_queries=5)
    with caplog.at_level(logging.WARNING):
        metrics = evaluator(NanQueries())
    assert list(metrics) == evaluator.metric_names()
    retrieval = {k: v for k, v in metrics.items() if k.startswith("pubmedqa_")}
    assert retrieval and all(math.isnan(v) for v in retrieval.values())
    alone = TaskEvaluator(["biosses"])(NanQueries())  # the task after the failed one: as evaluated on its own
    assert alone and all(math.isfinite(v) for v in alone.values())
    assert {k: metrics[k] for k in alone} == alone
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []  # the trainer's line names the step


class CountingNanQueries(NanQueries):
    """:class:`NanQueries` that keeps what it was asked to encode: ``(kind, number of texts)`` per call."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        self.calls.append((kind, len(texts)))
        return super().encode(texts, batch_size, kind, show_progress_bar)


@pytest.mark.parametrize("tasks", [["biosses", "pubmedqa"], ["biosses", "pubmedqa", "pubmedqa:dev"]])
def test_a_finished_task_before_a_nan_embeddings_task_is_kept_and_each_task_runs_once(data_dir, caplog, tasks):
    """The tasks before the NaN one were run again one at a time: BIOSSES was encoded twice per evaluation."""
    from biohicl.evaluation.evaluator import TaskEvaluator

    encoder = CountingNanQueries()
    evaluator = TaskEvaluator(tasks, max_queries=5)
    with caplog.at_level(logging.WARNING):
        metrics = evaluator(encoder)
    assert list(metrics) == evaluator.metric_names()
    biosses = {k: v for k, v in metrics.items() if k.startswith("biosses_")}
    assert biosses and all(math.isfinite(v) for v in biosses.values())
    assert all(math.isnan(v) for k, v in metrics.items() if k not in biosses)
    alone = [CountingNanQueries() for _ in tasks]
    for task, each in zip(tasks, alone, strict=True):
        single = TaskEvaluator([task], max_queries=5)(each)
        assert {k: metrics[k] for k in single} == pytest.approx(single, nan_ok=True)
    assert encoder.calls == [call for each in alone for call in each.calls]  # each task's encoding, once
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_direct_callers_of_a_retrieval_task_are_still_refused(data_dir):
    from biohicl.evaluation.retrieval import NonFiniteEmbeddings
    from biohicl.evaluation.runner import evaluate_model

    with pytest.raises(NonFiniteEmbeddings) as caught:  # its DataError, naming the task as BIOSSES's refusal does
        evaluate_model(NanQueries(), ["biosses", "pubmedqa:dev"], limit_queries=5)
    assert str(caught.value) == (
        "pubmedqa-dev: the encoder returned NaN or inf embeddings (a collapsed model?), so no query was scored"
    )


# -- training: a NaN evaluation is logged with one warning, training goes on, and it is never selected


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def nan_args(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, **overrides):
    from biohicl.training.args import BioHiCLTrainingArguments

    values = dict(
        output_dir=str(output_dir), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs_file), max_steps=4, per_device_train_batch_size=8, max_length=32, logging_steps=1,
        report_to="none", lora_target_modules=["query", "value"], use_cpu=True, seed=7, disable_tqdm=True,
        eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, eval_tasks=["biosses"],
        metric_for_best_model=KEY, load_best_model_at_end=True,
    )  # fmt: skip
    values.update(overrides)
    return BioHiCLTrainingArguments(**values)


def trainer_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "biohicl.training.trainer" and r.levelno >= 30]


class Scripted:
    """The next scores each call (step 0, 2, 4)."""

    def __init__(self, scores):
        self.scores = iter(scores)

    def __call__(self, model):
        return {"biosses_spearman": next(self.scores)}


def test_a_nan_step_0_is_never_the_best_and_a_later_finite_step_is_loaded(tiny_bert_dir, docs_file, tmp_path, caplog):
    """A NaN step 0 became the Trainer's best_metric, which no later step could beat: the base was kept."""
    from safetensors.torch import load_file

    from biohicl.training.run import train_biohicl

    with caplog.at_level(logging.WARNING, logger="biohicl.training.trainer"):
        run = train_biohicl(nan_args(tiny_bert_dir, docs_file, tmp_path / "run"), evaluator=Scripted([NAN, 0.5, 0.3]))
    summary = json.loads((run / "training_summary.json").read_text())
    assert (summary["best_step"], summary["best_metric"], summary["selected_base"]) == (2, 0.5, False)
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_metric"] == 0.5 and state["best_model_checkpoint"].endswith("checkpoint-2")
    final, best = (
        load_file(str(run / "adapter_model.safetensors")),
        load_file(str(run / "checkpoint-2" / "adapter_model.safetensors")),
    )
    assert all(torch.equal(final[name], best[name]) for name in best)
    warnings = trainer_warnings(caplog)
    assert warnings == [
        "step 0: the evaluation gave NaN or infinite biosses_spearman (a collapsed model?); training goes on, and a "
        "step whose selection metric is not finite is never selected"
    ]


def test_a_run_whose_evaluations_are_all_nan_ends_with_the_base_weights(tiny_bert_dir, docs_file, tmp_path, caplog):
    from safetensors.torch import load_file

    from biohicl.training.checkpoint import INITIAL_WEIGHTS_NAME
    from biohicl.training.run import train_biohicl

    with caplog.at_level(logging.WARNING, logger="biohicl.training.trainer"):
        run = train_biohicl(nan_args(tiny_bert_dir, docs_file, tmp_path / "run"), evaluator=Scripted([NAN] * 3))
    summary = json.loads((run / "training_summary.json").read_text())  # JSON has no NaN: null
    assert (summary["best_step"], summary["selected_base"], summary["best_metric"]) == (0, True, None)
    assert math.isnan(read_summary(summary)["best_metric"])
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] is None
    initial = load_file(str(run / INITIAL_WEIGHTS_NAME))
    final = load_file(str(run / "adapter_model.safetensors"))
    for name, tensor in initial.items():
        assert torch.equal(final[name.removeprefix("backbone.").replace(".default.", ".")], tensor), name
    warnings = trainer_warnings(caplog)
    assert [w.split(":")[0] for w in warnings] == ["step 0", "step 2", "step 4", "model selection"]
    assert warnings[-1] == (
        "model selection: no evaluation gave a finite eval_biosses_spearman (3, all NaN or infinite), so step 0 is "
        "kept; the run ends with the base model's weights"
    )


def test_a_run_without_load_best_whose_evaluations_are_all_nan_records_no_best_step(
    tiny_bert_dir, docs_file, tmp_path, caplog
):
    """training_summary.json said best_step 2 ("so step 2 is kept") for a run that ends with step 4's weights."""
    from biohicl.training.run import train_biohicl

    args = nan_args(tiny_bert_dir, docs_file, tmp_path / "run", load_best_model_at_end=False)
    with caplog.at_level(logging.WARNING, logger="biohicl.training.trainer"):
        run = train_biohicl(args, evaluator=Scripted([NAN, NAN]))  # no step 0: nothing is loaded at the end
    summary = json.loads((run / "training_summary.json").read_text())
    assert (summary["best_step"], summary["best_metric"], summary["selected_base"]) == (None, None, False)
    assert [step for step, _ in summary["selection"]["evaluations"]] == [2, 4]
    assert trainer_warnings(caplog)[-1] == (
        "model selection: no evaluation gave a finite eval_biosses_spearman (2, all NaN or infinite), so no step is "
        "selected; the run ends with its last step's weights"
    )


def test_a_checkpoint_whose_saved_best_is_nan_is_resumed_as_having_no_best(tiny_bert_dir, docs_file, tmp_path):
    """A checkpoint saved before NaN was refused as best holds best_metric NaN, which no later step could beat."""
    from biohicl.training.run import train_biohicl

    out = tmp_path / "run"
    train_biohicl(nan_args(tiny_bert_dir, docs_file, out), evaluator=Scripted([NAN, 0.3, 0.4]))
    state_file = out / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert state["best_model_checkpoint"].endswith("checkpoint-2")
    state.update(best_metric=NAN, best_global_step=0, best_model_checkpoint=None)  # as the old trainer saved it
    state_file.write_text(json.dumps(state))
    args = nan_args(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(out / "checkpoint-2"))
    run = train_biohicl(args, evaluator=Scripted([0.5]))
    resumed = json.loads((run / "trainer_state.json").read_text())
    assert resumed["best_metric"] == 0.5 and resumed["best_model_checkpoint"].endswith("checkpoint-4")
    assert json.loads((run / "training_summary.json").read_text())["best_step"] == 4


class CollapsesAtStep2:
    """The task evaluator on a model that retrieves by text length, whose query embeddings are NaN at step 2."""

    def __init__(self):
        from biohicl.evaluation.evaluator import TaskEvaluator

        self.inner = TaskEvaluator(["pubmedqa"], max_queries=5)
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        return self.inner(NanQueries() if self.calls == 2 else LengthEncoder())


def test_training_goes_on_past_an_evaluation_of_nan_embeddings(tiny_bert_dir, docs_file, tmp_path, caplog):
    """The retrieval task's DataError (NaN embeddings) stopped training at step 2."""
    from biohicl.training.run import train_biohicl

    metric = "eval_pubmedqa_recall@1"
    args = nan_args(tiny_bert_dir, docs_file, tmp_path / "run", eval_tasks=["pubmedqa"], metric_for_best_model=metric)
    evaluator = CollapsesAtStep2()
    with caplog.at_level(logging.WARNING, logger="biohicl.training.trainer"):
        run = train_biohicl(args, evaluator=evaluator)
    assert evaluator.calls == 3
    state = json.loads((run / "trainer_state.json").read_text())
    recall = {e["step"]: e["eval_pubmedqa_recall@1"] for e in state["log_history"] if "eval_pubmedqa_recall@1" in e}
    assert list(recall) == [0, 2, 4] and math.isnan(recall[2]) and math.isfinite(recall[0]) and recall[4] == recall[0]
    warnings = trainer_warnings(caplog)
    assert len(warnings) == 2 and warnings[0].startswith("step 2: the evaluation gave NaN or infinite pubmedqa_")
    assert warnings[1].startswith("model selection: no evaluation beat step 0")  # step 4 ties the base
    assert json.loads((run / "training_summary.json").read_text())["best_step"] == 0


class Constant(LengthEncoder):
    """A collapsed model: every text encodes alike, so BIOSSES's correlations are NaN."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.ones((len(texts), 3), dtype=np.float32)


class ConstantAtStep2(CollapsesAtStep2):
    """:class:`CollapsesAtStep2` on BIOSSES, the model constant at step 2."""

    def __init__(self):
        from biohicl.evaluation.evaluator import TaskEvaluator

        self.inner, self.calls = TaskEvaluator(["biosses"]), 0

    def __call__(self, model):
        self.calls += 1
        return self.inner(Constant() if self.calls == 2 else LengthEncoder())


def test_a_biosses_nan_in_training_is_one_warning_line(tiny_bert_dir, docs_file, tmp_path, caplog):
    """The harness warned for the task ("biosses: spearman, pearson are NaN: ...") beside the trainer's step line."""
    from biohicl.training.run import train_biohicl

    with caplog.at_level(logging.WARNING):
        train_biohicl(nan_args(tiny_bert_dir, docs_file, tmp_path / "run"), evaluator=ConstantAtStep2())
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "NaN" in r.getMessage()]
    assert said == [
        "step 2: the evaluation gave NaN or infinite biosses_spearman, biosses_pearson (a collapsed model?); training "
        "goes on, and a step whose selection metric is not finite is never selected"
    ]


# -- a study run's evaluation


def test_a_study_runs_nan_evaluation_is_refused_in_one_line_naming_the_run(tmp_path, tiny_bert_dir):
    """atomic_write_json raised ValueError ("Out of range float values are not JSON compliant") with a traceback."""
    from biohicl.models.model import BioHiCL
    from biohicl.study import ReproduceConfig
    from biohicl.study.execute import evaluate_encoder

    config = ReproduceConfig.from_yaml(Path(__file__).resolve().parents[1] / "configs" / "reproduce_tiny.yaml")
    config.output_dir = str(tmp_path / "study")
    encoder = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    with torch.no_grad():
        for weight in encoder.parameters():
            weight.zero_()  # every text encodes alike: BIOSSES's correlations are NaN
    output = tmp_path / "eval.json"
    with pytest.raises(DataError) as caught:
        evaluate_encoder(config, config.models[0], encoder, "tiny/full/seed0", output)
    assert str(caught.value) == (
        "tiny/full/seed0: biosses: spearman, pearson are NaN: the model's embeddings are constant or not finite (a "
        "collapsed model?), and a results file holds numbers only; nothing was written to eval.json"
    )
    assert not output.exists()


def test_a_study_runs_nan_embeddings_refusal_names_the_run_and_the_task(tmp_path, tiny_bert_dir, data_dir):
    """It read 'tiny/full/seed0: the encoder returned NaN or inf embeddings; nothing was scored; nothing was written
    to eval.json': no task named, two "nothing" clauses."""
    from biohicl.models.model import BioHiCL
    from biohicl.study import ReproduceConfig
    from biohicl.study.execute import evaluate_encoder

    config = ReproduceConfig.from_yaml(Path(__file__).resolve().parents[1] / "configs" / "reproduce_tiny.yaml")
    config.output_dir, config.tasks, config.limit_queries = str(tmp_path / "study"), ["pubmedqa"], 5
    encoder = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    with torch.no_grad():
        for weight in encoder.parameters():
            weight.fill_(NAN)  # every embedding NaN: the retrieval task is refused before any scoring
    output = tmp_path / "eval.json"
    with pytest.raises(DataError) as caught:
        evaluate_encoder(config, config.models[0], encoder, "tiny/full/seed0", output)
    assert str(caught.value) == (
        "tiny/full/seed0: pubmedqa: the encoder returned NaN or inf embeddings (a collapsed model?), so no query was "
        "scored; nothing was written to eval.json"
    )
    assert not output.exists()
