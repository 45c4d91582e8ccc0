"""bf16 training evaluates in fp32: accelerate wraps the prepared model's forward in autocast for good, and the
trainer puts the original forward back around each evaluation (and the wrapped one after it), so an in-training
evaluation encodes as the same weights do outside training (a study's step-0 pre-pass, a reloaded checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from conftest import synthetic_documents
from torch import nn
from transformers import TrainerCallback

from biohicl.models.signature import unwrapped
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.precision import fp32_forward
from biohicl.training.run import build_model, train_biohicl

TEXTS = ["insulin resistance in type 2 diabetes", "metformin"]


@pytest.fixture()
def fresh_accelerator_state():
    """accelerate's state is a process-wide singleton: an earlier test's Accelerator (another mixed precision) would
    make this one's refuse to start, so it is reset before and after."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_fp32_forward_restores_the_original_forward_and_puts_the_wrapped_one_back(fresh_accelerator_state):
    model = nn.Linear(4, 4)
    plain = model.forward
    Accelerator(mixed_precision="bf16", cpu=True).prepare_model(model)
    wrapped = model.forward
    x = torch.randn(2, 4)
    with torch.autocast("cpu", enabled=False):  # the wrapper enters autocast itself: an outer one cannot undo it
        assert not torch.equal(model(x), plain(x))
    with fp32_forward(model) as same:
        assert same is model and model.forward == plain
        assert torch.equal(model(x), plain(x))
    assert model.forward is wrapped
    with pytest.raises(RuntimeError, match="evaluator failed"), fp32_forward(model):
        raise RuntimeError("evaluator failed")
    assert model.forward is wrapped
    untouched = nn.Linear(4, 4)
    with fp32_forward(untouched):
        assert "forward" not in untouched.__dict__
    assert "forward" not in untouched.__dict__


class Embeddings:
    """An evaluator keeping the model's embeddings of ``TEXTS`` at each evaluation."""

    def __init__(self):
        self.embeddings = []

    def __call__(self, model):
        self.embeddings.append(model.encode(TEXTS, convert_to="torch"))
        return {"biosses_spearman": 0.5}


class Passes(TrainerCallback):
    """Each pass through layer 0's feed-forward Linear: (training?, autocast on?, output dtype); and whether the
    model's forward is still accelerate's autocast wrapper when training ends."""

    def __init__(self):
        self.passes, self.wrapped_at_end = [], None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        dense = unwrapped(model.backbone).encoder.layer[0].intermediate.dense
        dense.register_forward_hook(
            lambda module, inputs, output: self.passes.append(
                (module.training, torch.is_autocast_enabled("cpu"), output.dtype)
            )
        )

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.wrapped_at_end = "forward" in model.__dict__ and model.forward != model._original_forward


def test_bf16_training_evaluates_in_fp32_and_trains_in_bf16_after_each_evaluation(tiny_bert_dir, tmp_path):
    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), base_model=str(tiny_bert_dir), dataset_path=str(docs), max_steps=2,
        per_device_train_batch_size=8, max_length=32, save_strategy="no", report_to="none", use_cpu=True, seed=7,
        disable_tqdm=True, lora_target_modules=["query", "value"], bf16=True, eval_strategy="steps", eval_steps=1,
        eval_on_start=True, eval_tasks=["biosses"],
    )  # fmt: skip
    reference = build_model(args).encode(TEXTS, convert_to="torch")  # the base never prepared: fp32 (LoRA B = 0)
    evaluator, passes = Embeddings(), Passes()
    train_biohicl(args, [passes], evaluator=evaluator)
    assert len(evaluator.embeddings) == 3  # steps 0, 1 and 2
    assert torch.equal(evaluator.embeddings[0], reference)  # step 0 encodes bit for bit as the un-prepared base
    training = [p[1:] for p in passes.passes if p[0]]
    evaluating = [p[1:] for p in passes.passes if not p[0]]
    assert training == [(True, torch.bfloat16)] * 2  # steps 1 and 2, each after an evaluation: still bf16 autocast
    assert evaluating and set(evaluating) == {(False, torch.float32)}
    assert passes.wrapped_at_end is True


def test_a_bf16_studys_runs_read_back_the_step_0_pre_pass(tiny_bert_dir, tmp_path, counting_harness):
    """Under bf16 a run's step 0 is the pre-pass's cache entry, as in fp32: one harness call for step 0 in all."""
    from biohicl.study import ReproduceConfig, evaluate_step0_once, plan_study, prepare_dataset
    from biohicl.study import execute as execute_module
    from biohicl.study.config import training_arguments

    config = ReproduceConfig.from_dict({
        "title": "step 0 once, bf16", "output_dir": str(tmp_path / "study"),
        "dataset": {"path": str(tmp_path / "dataset"), "limit": 24, "top_k": 3,
                    "inputs": [{"source": "pubmedqa", "files": ["pubmedqa/ori_pqal.json"]}]},
        "models": [{"name": "tiny", "model": str(tiny_bert_dir), "pooling": "mean", "max_length": 24}],
        "seeds": [0], "tasks": ["biosses"], "variants": {"full": {}},
        "training": {"max_steps": 2, "per_device_train_batch_size": 8, "eval_strategy": "steps", "eval_steps": 2,
                     "save_strategy": "steps", "save_steps": 2, "eval_tasks": ["biosses"], "bf16": True,
                     "use_cpu": True, "metric_for_best_model": "eval_biosses_spearman", "load_best_model_at_end": True},
    })  # fmt: skip
    dataset_path, _ = prepare_dataset(config, progress=False)
    assert evaluate_step0_once(config, dataset_path) == 1 and len(counting_harness) == 1
    cached = list((tmp_path / "study" / "eval_cache").glob("*.json"))
    run = next(r for r in plan_study(config) if r.variant == "full")
    args = training_arguments(config, config.models[0], run.variant, run.seed, dataset_path, run.run_dir)
    assert args.bf16
    folder = execute_module.train_run(args)
    assert len(counting_harness) == 2  # its step 2 only: step 0 was read back
    assert len(list((tmp_path / "study" / "eval_cache").glob("*.json"))) == 2  # the base and step 2
    state = json.loads((folder / "trainer_state.json").read_text())
    step0 = next(e["eval_biosses_spearman"] for e in state["log_history"] if e.get("step") == 0 and "eval_runtime" in e)
    assert step0 == json.loads(cached[0].read_text())["metrics"]["biosses_spearman"]
