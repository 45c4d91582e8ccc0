"""A training run without dev evaluation (a plain ``biohicl train``, no ``--eval_tasks``) keeps its last step whatever
it scores, and says so in one warning line when its inputs are good and its first step starts (a bad input stays one
line), with how to select on dev; a run that evaluates (with
``--eval_tasks``, the demo's, the study configs') says nothing of it. Tiny BERT, 24 synthetic documents."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run_settings import NO_DEV_SELECTION
from tests.conftest import synthetic_documents

ROOT = Path(__file__).resolve().parents[1]
STUDY_CONFIGS = sorted((ROOT / "configs").glob("study_*.yaml"))


@pytest.fixture
def documents(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def notices(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "biohicl.training.run" and r.levelno == logging.WARNING and "no dev evaluation" in r.getMessage()
    ]


def tiny_run(tiny_bert_dir: Path, documents: Path, output_dir: Path, **more) -> BioHiCLTrainingArguments:
    return BioHiCLTrainingArguments(
        output_dir=str(output_dir), dataset_path=str(documents), base_model=str(tiny_bert_dir), max_steps=2,
        per_device_train_batch_size=4, use_cpu=True, report_to="none", disable_tqdm=True, **more,
    )  # fmt: skip


def test_a_plain_command_line_run_warns_once_that_it_keeps_its_last_step(tiny_bert_dir, documents, tmp_path, caplog):
    from biohicl.cli.main import main

    output_dir = tmp_path / "run"
    argv = ["train", "--dataset_path", str(documents), "--output_dir", str(output_dir), "--base_model"]
    argv += [str(tiny_bert_dir), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--report_to", "none", "--disable_tqdm", "true"]) == 0
    assert notices(caplog) == [NO_DEV_SELECTION]
    assert NO_DEV_SELECTION.startswith(
        "no dev evaluation (no --eval_tasks), so the run keeps its last step whatever it scores; to select a step on "
        "dev data, step 0 (the base) a candidate, add e.g. --eval_tasks pubmedqa:dev --eval_strategy steps "
    )
    assert "\n" not in NO_DEV_SELECTION and "--config configs/biohicl_minilm.yaml" in NO_DEV_SELECTION
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2
    assert summary["best_step"] is None  # nothing selected: the last step is the model


def test_the_notices_remedy_is_a_run_that_selects_on_dev(tiny_bert_dir, documents, tmp_path):
    """The options the line gives, added to a plain command, parse into a run that evaluates at step 0 and loads
    its best step."""
    from biohicl.cli.train import parse_args

    remedy = NO_DEV_SELECTION.split("add e.g. ", 1)[1].split(" (", 1)[0].split()
    args = parse_args(["--dataset_path", str(documents), "--output_dir", str(tmp_path / "run"), *remedy])
    assert args.eval_tasks == ["pubmedqa:dev"] and args.eval_strategy == "steps"
    assert args.load_best_model_at_end and args.eval_on_start
    assert args.metric_for_best_model == "pubmedqa-dev_recall@1" and args.save_steps == args.eval_steps == 50


def test_an_evaluating_run_gives_no_such_line(tiny_bert_dir, documents, tmp_path, caplog):
    """A real run that evaluates (a scripted evaluator, step 0 a candidate) trains without the line."""
    args = tiny_run(
        tiny_bert_dir, documents, tmp_path / "run", eval_strategy="steps", eval_steps=1, save_steps=1,
        load_best_model_at_end=True, metric_for_best_model="score",
    )  # fmt: skip
    from biohicl.training.run import train_biohicl

    with caplog.at_level(logging.WARNING):
        train_biohicl(args, evaluator=lambda model: {"score": 0.5})
    assert notices(caplog) == []
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 2


class Started(Exception):
    """Raised where the run's first step would start: its data, model and batches built."""


def started(args: BioHiCLTrainingArguments, monkeypatch, caplog) -> list[str]:
    """The notice lines of ``train_biohicl(args)`` up to its first step."""
    from biohicl.training import run

    def stop(*_args, **_kwargs):
        raise Started

    monkeypatch.setattr(run.BioHiCLTrainer, "train", stop)
    with caplog.at_level(logging.WARNING), pytest.raises(Started):
        run.train_biohicl(args, evaluator=lambda model: {})
    return notices(caplog)


def test_the_line_comes_when_the_inputs_are_good_before_the_first_step(
    tiny_bert_dir, documents, tmp_path, monkeypatch, caplog
):
    assert started(tiny_run(tiny_bert_dir, documents, tmp_path / "run"), monkeypatch, caplog) == [NO_DEV_SELECTION]


def test_a_bad_input_is_one_line_without_the_notice(tiny_bert_dir, tmp_path, caplog):
    from biohicl.errors import ConfigError, DataError
    from biohicl.training.run import train_biohicl

    with caplog.at_level(logging.WARNING), pytest.raises((ConfigError, DataError)):
        train_biohicl(tiny_run(tiny_bert_dir, tmp_path / "missing.jsonl", tmp_path / "run"))
    assert notices(caplog) == []


def test_the_demos_run_evaluates_so_gives_no_such_line(tmp_path):
    from biohicl.study.demo import DemoArguments, short_run_arguments

    args = short_run_arguments(DemoArguments(output_dir=str(tmp_path / "demo")))
    assert str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no" and args.load_best_model_at_end


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: p.name)
def test_the_study_configs_runs_evaluate_so_give_no_such_line(path, tmp_path):
    """Every run of every study config selects on dev: the notice's condition is false for each."""
    from biohicl.study import ReproduceConfig
    from biohicl.study.config import training_arguments

    config = ReproduceConfig.from_yaml(path)
    config.training.pop("bf16", None)  # this machine may have no GPU
    for model in config.models:
        model.training.pop("bf16", None)
        for variant in config.model_variants(model):
            args = training_arguments(config, model, variant, 0, tmp_path / "dataset", tmp_path / variant)
            assert str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no", variant
