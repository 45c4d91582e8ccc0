"""A training run without dev evaluation (a plain ``biohicl train``, no ``--eval_tasks``), or one that evaluates without
``--load_best_model_at_end``, keeps its last step whatever it scores, and says so in one warning line when its inputs
are good and its first step starts (a bad input stays one line), with how to select on dev: ``biohicl train``'s
options, a study run's config keys (``biohicl reproduce``'s ``configs/reproduce_*.yaml``, the paper's protocol, select
nothing); a run that selects (the demo's, the ``study_*`` configs') says nothing of it. Tiny BERT, 24 synthetic
documents."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run_settings import dev_selection_notice
from tests.conftest import synthetic_documents

ROOT = Path(__file__).resolve().parents[1]
STUDY_CONFIGS = sorted((ROOT / "configs").glob("study_*.yaml"))


@pytest.fixture
def no_dev_selection(tmp_path) -> str:
    """The one warning line of a plain ``biohicl train`` run (no ``--eval_tasks``)."""
    return dev_selection_notice(BioHiCLTrainingArguments(output_dir=str(tmp_path / "plain")))


@pytest.fixture
def documents(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def notices(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "biohicl.training.run"
        and r.levelno == logging.WARNING
        and "so the run keeps its last step" in r.getMessage()
    ]


def tiny_run(tiny_bert_dir: Path, documents: Path, output_dir: Path, **more) -> BioHiCLTrainingArguments:
    return BioHiCLTrainingArguments(
        output_dir=str(output_dir), dataset_path=str(documents), base_model=str(tiny_bert_dir), max_steps=2,
        per_device_train_batch_size=4, use_cpu=True, report_to="none", disable_tqdm=True, **more,
    )  # fmt: skip


def test_a_plain_command_line_run_warns_once_that_it_keeps_its_last_step(
    tiny_bert_dir, documents, tmp_path, caplog, no_dev_selection
):
    from biohicl.cli.main import main

    output_dir = tmp_path / "run"
    argv = ["train", "--dataset_path", str(documents), "--output_dir", str(output_dir), "--base_model"]
    argv += [str(tiny_bert_dir), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--report_to", "none", "--disable_tqdm", "true"]) == 0
    assert notices(caplog) == [no_dev_selection]
    assert no_dev_selection.startswith(
        "no dev evaluation (no --eval_tasks), so the run keeps its last step whatever it scores; to select a step on "
        "dev data, step 0 (the base) a candidate, add e.g. --eval_tasks pubmedqa:dev --eval_strategy steps "
    )
    assert "\n" not in no_dev_selection and "--config configs/biohicl_minilm.yaml" in no_dev_selection
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2
    assert summary["best_step"] is None  # nothing selected: the last step is the model


def test_the_notices_remedy_is_a_run_that_selects_on_dev(tiny_bert_dir, documents, tmp_path, no_dev_selection):
    """The options the line gives, added to a plain command, parse into a run that evaluates at step 0 and loads
    its best step."""
    from biohicl.cli.train import parse_args

    remedy = no_dev_selection.split("add e.g. ", 1)[1].split(" (", 1)[0].split()
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
    tiny_bert_dir, documents, tmp_path, monkeypatch, caplog, no_dev_selection
):
    assert started(tiny_run(tiny_bert_dir, documents, tmp_path / "run"), monkeypatch, caplog) == [no_dev_selection]


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
    from biohicl.study.config import study_selection_notice, training_arguments

    config = ReproduceConfig.from_yaml(path)
    config.training.pop("bf16", None)  # this machine may have no GPU
    for model in config.models:
        model.training.pop("bf16", None)
        for variant in config.model_variants(model):
            args = training_arguments(config, model, variant, 0, tmp_path / "dataset", tmp_path / variant)
            assert str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no", variant
            assert args.load_best_model_at_end and study_selection_notice(args) is None, variant


GUIDE = 'docs/training.md, "Model selection on dev data"'
RECIPE = "or train with --config configs/biohicl_minilm.yaml, the registry's recipe"
KEEPS = "so the run keeps its last step whatever it scores; to select a step on dev data, step 0 (the base) a candidate"


@pytest.mark.parametrize(
    ("more", "line"),
    [
        (  # no metric, and no task of the recipe's: one of its own tasks' metrics, named as such
            {"save_steps": 1},
            f"dev evaluation without --load_best_model_at_end, {KEEPS}, add e.g. --load_best_model_at_end "
            "--metric_for_best_model METRIC (METRIC: a metric of its --eval_tasks, as its evaluation logs it; "
            f"{GUIDE}), {RECIPE}",
        ),
        (  # saves every 500 steps: a best step must be saved to be loaded
            {},
            f"dev evaluation without --load_best_model_at_end, {KEEPS}, add e.g. --save_steps 1 "
            "--load_best_model_at_end --metric_for_best_model METRIC (METRIC: a metric of its --eval_tasks, as its "
            f"evaluation logs it; {GUIDE}), {RECIPE}",
        ),
        (
            {"save_steps": 1, "metric_for_best_model": "score"},
            f"dev evaluation without --load_best_model_at_end, {KEEPS}, add --load_best_model_at_end "
            f"--metric_for_best_model score ({GUIDE}), {RECIPE}",
        ),
        (
            {"save_strategy": "no"},
            f"dev evaluation without --load_best_model_at_end, {KEEPS}, add e.g. --save_strategy steps --save_steps 1 "
            "--load_best_model_at_end --metric_for_best_model METRIC (METRIC: a metric of its --eval_tasks, as its "
            f"evaluation logs it; {GUIDE}), {RECIPE}",
        ),
    ],
)
def test_an_evaluating_run_without_best_model_loading_says_it_keeps_its_last_step(
    tiny_bert_dir, documents, tmp_path, monkeypatch, caplog, more, line
):
    args = tiny_run(tiny_bert_dir, documents, tmp_path / "run", eval_strategy="steps", eval_steps=1, **more)
    assert started(args, monkeypatch, caplog) == [line]


def test_that_notices_remedy_parses_into_a_run_that_loads_its_best_step(documents, tmp_path):
    from biohicl.cli.train import parse_args
    from biohicl.training.run_settings import dev_selection_notice

    argv = ["--dataset_path", str(documents), "--output_dir", str(tmp_path / "run"), "--eval_tasks", "pubmedqa:dev"]
    argv += ["--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "no"]
    notice = dev_selection_notice(parse_args(argv))
    assert " --save_steps 3 " in notice  # the command line's 3 is the float 3.0, said as typed
    assert "--metric_for_best_model pubmedqa-dev_recall@1 (or another metric of its --eval_tasks;" in notice
    args = parse_args([*argv, *notice.split("add e.g. ", 1)[1].split(" (", 1)[0].split()])
    assert args.load_best_model_at_end and args.eval_on_start and args.metric_for_best_model == "pubmedqa-dev_recall@1"
    assert str(args.save_strategy.value) == "steps" and args.save_steps == args.eval_steps == 3
    assert dev_selection_notice(args) is None


def test_an_evaluating_run_without_best_model_loading_ends_with_its_last_step(tiny_bert_dir, documents, tmp_path):
    """Its best-scoring step is recorded, not loaded: the saved model is the last checkpoint's."""
    from safetensors.torch import load_file

    from biohicl.training.run import train_biohicl

    scores = iter([0.9, 0.1])  # step 1 scores best
    output_dir = tmp_path / "run"
    args = tiny_run(
        tiny_bert_dir, documents, output_dir, eval_strategy="steps", eval_steps=1, save_steps=1,
        metric_for_best_model="score", learning_rate=1e-2,
    )  # fmt: skip
    train_biohicl(args, evaluator=lambda model: {"score": next(scores)})
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert summary["best_step"] == 1 and summary["selection"]["loaded_best"] is False
    saved, last, best = (load_file(folder / "adapter_model.safetensors") for folder in (
        output_dir, output_dir / "checkpoint-2", output_dir / "checkpoint-1"))  # fmt: skip
    assert all(saved[k].equal(last[k]) for k in last) and not all(saved[k].equal(best[k]) for k in best)


STUDY_KEYS = "in the study config's training"


def study_run(tiny_bert_dir: Path, documents: Path, tmp_path: Path, **training) -> BioHiCLTrainingArguments:
    from biohicl.study.config import ReproduceConfig, training_arguments
    from tests.conftest import tiny_study_values

    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    values["training"].update(max_steps=2, per_device_train_batch_size=4, use_cpu=True, **training)
    config = ReproduceConfig.from_dict(values)
    model = config.models[0]
    return training_arguments(config, model, "full", 0, documents, tmp_path / "study" / "tiny" / "full" / "seed0")


def study_started(args: BioHiCLTrainingArguments, monkeypatch, caplog) -> list[str]:
    """The notice lines of the study's own training call (``biohicl.study.execute.train_run``) up to its first step."""
    from biohicl.study import execute
    from biohicl.training import run

    def stop(*_args, **_kwargs):
        raise Started

    monkeypatch.setattr(run.BioHiCLTrainer, "train", stop)
    with caplog.at_level(logging.WARNING), pytest.raises(Started):
        execute.train_run(args)
    return notices(caplog)


def test_a_study_run_without_dev_evaluation_names_the_study_configs_keys(
    tiny_bert_dir, documents, tmp_path, monkeypatch, caplog
):
    """As ``configs/reproduce_*.yaml``'s runs: no option of ``biohicl train`` in the line."""
    line = (
        f'no dev evaluation (no eval_tasks in the study config), {KEEPS}, set e.g. eval_tasks: ["pubmedqa:dev"], '
        "eval_strategy: steps, eval_steps: 50, save_steps: 50, load_best_model_at_end: true, metric_for_best_model: "
        f"pubmedqa-dev_recall@1 {STUDY_KEYS} ({GUIDE}; configs/study_minilm_cpu.yaml is a study that does)"
    )
    assert study_started(study_run(tiny_bert_dir, documents, tmp_path), monkeypatch, caplog) == [line]
    assert "--" not in line


def test_a_study_run_that_evaluates_without_best_model_loading_names_the_study_configs_keys(
    tiny_bert_dir, documents, tmp_path, monkeypatch, caplog
):
    args = study_run(tiny_bert_dir, documents, tmp_path, eval_strategy="steps", eval_steps=1, eval_tasks=["biosses"])
    line = (
        f"dev evaluation without load_best_model_at_end in the study config, {KEEPS}, set e.g. "
        f"load_best_model_at_end: true, metric_for_best_model: METRIC {STUDY_KEYS} (METRIC: a metric of its "
        f"eval_tasks, as its evaluation logs it; {GUIDE}; configs/study_minilm_cpu.yaml is a study that does)"
    )
    assert study_started(args, monkeypatch, caplog) == [line]


def test_the_study_notices_keys_make_a_study_config_that_selects(tiny_bert_dir, documents, tmp_path):
    """The settings the study's line gives, put into its config's ``training``, are a study whose runs select."""
    import yaml

    from biohicl.study.config import study_selection_notice

    notice = study_selection_notice(study_run(tiny_bert_dir, documents, tmp_path))
    keys = yaml.safe_load("{" + notice.split("set e.g. ", 1)[1].split(f" {STUDY_KEYS}", 1)[0] + "}")
    args = study_run(tiny_bert_dir, documents, tmp_path, **keys)
    assert args.load_best_model_at_end and args.eval_tasks == ["pubmedqa:dev"] and args.eval_on_start
    assert study_selection_notice(args) is None


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("reproduce_*.yaml")), ids=lambda p: p.name)
def test_the_reproduce_configs_runs_get_the_study_line(path, tmp_path):
    """The paper's protocol selects nothing on purpose: each run says so in the study's own words."""
    from biohicl.study import ReproduceConfig
    from biohicl.study.config import study_selection_notice, training_arguments

    config = ReproduceConfig.from_yaml(path)
    config.training.pop("bf16", None)  # this machine may have no GPU
    for model in config.models:
        for variant in config.model_variants(model):
            args = training_arguments(config, model, variant, 0, tmp_path / "dataset", tmp_path / variant)
            notice = study_selection_notice(args)
            assert notice.startswith("no dev evaluation (no eval_tasks in the study config), so the run keeps ")
            assert "--" not in notice, variant
