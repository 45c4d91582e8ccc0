"""GPU memory around a study's runs, on the CPU with ``torch.cuda`` monkeypatched: the parent's cached blocks are
released after the step-0 pre-pass, and a trained run's ``eval.json`` carries its training's peak GPU memory."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import tiny_study_values

from biohicl.evaluation import runner
from biohicl.study import ReproduceConfig, evaluate_step0_once, plan_study, prepare_dataset
from biohicl.study import execute as execute_module

PEAK = 11_234_567_890  # what the fake allocator reports as the run's peak, bytes


@pytest.fixture
def calls(monkeypatch):
    """The evaluation harness replaced by a constant one; every fake CUDA call and evaluation, in order."""
    seen: list[str] = []

    def evaluate_model(model, tasks, **kwargs):
        seen.append("evaluate")
        return {
            "summary": {"biosses/spearman": 0.5},
            "tasks": {},
            "settings": kwargs.get("settings", {}),
            "wall_time_s": 1.0,
        }

    monkeypatch.setattr(runner, "evaluate_model", evaluate_model)
    return seen


def _fake_cuda(monkeypatch, seen: list[str], initialised: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: seen.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: seen.append("reset_peak"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: seen.append("max_allocated") or PEAK)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (30 << 30, 80 << 30))


def _study(tmp_path, tiny_bert_dir, **training) -> ReproduceConfig:
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    values["variants"] = {"full": {}}
    values["training"] |= training
    return ReproduceConfig.from_dict(values)


@pytest.mark.parametrize("initialised", [True, False])
def test_the_step0_pre_pass_releases_the_parents_cached_gpu_memory(
    tmp_path, tiny_bert_dir, calls, monkeypatch, initialised
):
    config = _study(
        tmp_path, tiny_bert_dir, eval_strategy="steps", eval_steps=2, save_steps=2, eval_tasks=["biosses"],
        metric_for_best_model="eval_biosses_spearman", load_best_model_at_end=True,
    )  # fmt: skip
    dataset_path, _ = prepare_dataset(config, progress=False)
    _fake_cuda(monkeypatch, calls, initialised)
    assert evaluate_step0_once(config, dataset_path) == 1
    # after the model is gone, once, and only when this process has a CUDA context to hold blocks in
    assert calls == (["evaluate", "empty_cache"] if initialised else ["evaluate"])


def _train_one(tmp_path, tiny_bert_dir, monkeypatch, seen, train):
    """``_execute`` of the study's one run to train, its training replaced by ``train`` and its reload by the base."""
    config = _study(tmp_path, tiny_bert_dir)
    run = next(r for r in plan_study(config) if r.variant == "full")
    assert run.status == "train"
    monkeypatch.setattr(execute_module, "train_run", train)
    monkeypatch.setattr(execute_module, "load_trained", lambda model, run_dir: execute_module.load_base(model))
    record = execute_module._execute(config, config.models[0], run, 1, 1, tmp_path / "dataset")
    return record, json.loads((run.run_dir / "eval.json").read_text())


def test_a_trained_runs_record_carries_its_peak_gpu_memory(tmp_path, tiny_bert_dir, calls, monkeypatch, caplog):
    _fake_cuda(monkeypatch, calls, initialised=True)
    caplog.set_level(logging.INFO, logger="biohicl.study.execute")
    record, saved = _train_one(tmp_path, tiny_bert_dir, monkeypatch, calls, lambda args: calls.append("train"))
    # the peak is reset before the run trains and read before it is evaluated (evaluation's own peak not counted)
    assert calls == ["reset_peak", "train", "max_allocated", "evaluate"]
    assert record["training_peak_gpu_memory_bytes"] == saved["training_peak_gpu_memory_bytes"] == PEAK
    assert "peak GPU memory in training 10.46 GiB" in caplog.text  # 11_234_567_890 / 2**30


def test_a_run_trained_without_cuda_records_no_peak(tmp_path, tiny_bert_dir, calls, monkeypatch):
    _fake_cuda(monkeypatch, calls, initialised=False)
    record, saved = _train_one(tmp_path, tiny_bert_dir, monkeypatch, calls, lambda args: calls.append("train"))
    assert calls == ["train", "evaluate"]
    assert "training_peak_gpu_memory_bytes" not in record and "training_peak_gpu_memory_bytes" not in saved


def test_a_run_out_of_gpu_memory_logs_the_peak_and_what_was_free(tmp_path, tiny_bert_dir, calls, monkeypatch, caplog):
    _fake_cuda(monkeypatch, calls, initialised=True)

    def out_of_memory(args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        _train_one(tmp_path, tiny_bert_dir, monkeypatch, calls, out_of_memory)
    assert "evaluate" not in calls
    message = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "tiny/full/seed0: out of GPU memory in training" in message
    assert "peak 10.46 GiB allocated by this process; 30.00 GiB of 80.00 GiB free" in message
